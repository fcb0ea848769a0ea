//! The desktop app and the game scene, launched as a user would under a virtual X display
//! (Xvfb through `xvfb-run`), each driving one generation with the default model and saving a
//! screenshot, which is then checked for what it must show. Each destroys its device after a
//! few steps, as a driver reset loses one, and must start again on a new device. Needs `xvfb-run` (Debian: xvfb,
//! xauth) and a Vulkan driver that presents to X (lavapipe does); fails, never skips, without.

use std::path::{Path, PathBuf};
use std::process::Command;

/// An example binary built next to this test (cargo builds examples before running tests).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let p = dir.join("examples").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo test` (which builds examples) or `cargo build --examples`",
        p.display()
    );
    p
}

/// Runs an example under Xvfb with `--prompt P --screenshot FILE`; returns the decoded RGB
/// screenshot and the program's stdout.
fn run_with_screenshot(
    name: &str,
    prompt: &str,
    extra: &[&str],
) -> (usize, usize, Vec<u8>, String) {
    let shot = std::env::temp_dir().join(format!("ptdit-{name}-{}.png", std::process::id()));
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1024x768x24"])
        .arg(example(name))
        .args(["--prompt", prompt, "--screenshot"])
        .arg(&shot)
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xvfb-run ({e}): install Xvfb (Debian: apt-get install xvfb xauth)")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h, rgb) = decode_png(&shot);
    (w, h, rgb, stdout)
}

pub(crate) fn decode_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let ch = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(ch)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width as usize, info.height as usize, rgb)
}

/// Share of pixels in the box whose brightest channel is at least `min`.
fn lit_share(w: usize, rgb: &[u8], (x0, y0, x1, y1): (usize, usize, usize, usize), min: u8) -> f32 {
    let mut n = 0;
    let mut bright = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let p = &rgb[(y * w + x) * 3..][..3];
            n += 1;
            if p.iter().any(|v| *v >= min) {
                bright += 1;
            }
        }
    }
    bright as f32 / n as f32
}

/// Pixels in the box that are clearly coloured (max − min channel over 60).
fn coloured(w: usize, rgb: &[u8], (x0, y0, x1, y1): (usize, usize, usize, usize)) -> usize {
    let mut n = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let p = &rgb[(y * w + x) * 3..][..3];
            let (lo, hi) = (p.iter().min().unwrap(), p.iter().max().unwrap());
            if hi - lo > 60 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn game_scene_survives_a_lost_device_and_shows_the_generated_texture_on_the_cube() {
    let (w, h, rgb, stdout) =
        run_with_screenshot("game", "red apple", &["--lose-device-after-steps", "3"]);
    assert!(
        stdout.contains("device was lost") && stdout.contains("recovered from a lost device"),
        "the game did not start again on a new device: {stdout}"
    );
    assert!(stdout.contains("frame time without generation"), "{stdout}");
    assert!(stdout.contains("frame time while generating"), "{stdout}");
    // The corners are the scene's clear colour (about 112 at most); the cube in the middle
    // carries the emoji: its white background and its colours, shaded but far brighter than
    // the grey placeholder texture (128, shaded to at most 128), so a bright cube means the
    // generated image reached the texture.
    let corner = lit_share(w, &rgb, (0, 0, w / 10, h / 10), 130);
    assert!(corner < 0.01, "corners should be the background ({corner})");
    let mid = (w * 3 / 8, h * 3 / 8, w * 5 / 8, h * 5 / 8);
    let bright = lit_share(w, &rgb, mid, 160);
    assert!(
        bright > 0.3,
        "the cube's face is not showing the generated image ({bright})"
    );
    assert!(
        coloured(w, &rgb, (w / 4, h / 4, w * 3 / 4, h * 3 / 4)) > 50,
        "no emoji colours on the cube"
    );
    // Seen from above, as in the screenshot (drawn at a fixed turn), a cube drawn right shows its
    // top face at the top of its outline; one drawn inside out shows a far side face's inside
    // there (the near faces culled).
    // The shader shades each face by its normal: the texture's white comes out at 230 on the
    // ±y faces (0.55 + 0.45 · 0.7 / |(0.4, 0.7, 1)| = 0.795, sRGB-encoded), 243 on ±z and 216
    // on ±x, so the top band's white tells the two apart.
    let top = top_band_white(w, h, &rgb);
    assert!(
        (top - 230.0).abs() <= 6.0,
        "the top of the cube is not its top face (white at {top}, not 230): drawn inside out?"
    );
}

/// Median brightness of the near-white pixels in the band 2–12 % down the cube's outline (the
/// pixels that differ from the corner's background colour).
fn top_band_white(w: usize, h: usize, rgb: &[u8]) -> f32 {
    let px = |x: usize, y: usize| &rgb[(y * w + x) * 3..][..3];
    let bg = px(0, 0).to_vec();
    let is_cube = |p: &[u8]| {
        p.iter()
            .zip(&bg)
            .map(|(a, b)| a.abs_diff(*b) as u32)
            .sum::<u32>()
            > 30
    };
    let rows: Vec<usize> = (0..h)
        .filter(|&y| (0..w).any(|x| is_cube(px(x, y))))
        .collect();
    let (first, last) = (rows[0], rows[rows.len() - 1]);
    let span = (last - first) as f32;
    let band = (first + (span * 0.02) as usize)..(first + (span * 0.12) as usize);
    let mut white: Vec<f32> = band
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| px(x, y))
        .filter(|p| is_cube(p))
        .filter(|p| {
            p.iter().min().unwrap() > &120 && p.iter().max().unwrap() - p.iter().min().unwrap() < 25
        })
        .map(|p| p.iter().map(|v| *v as f32).sum::<f32>() / 3.0)
        .collect();
    assert!(
        white.len() > 100,
        "too few white pixels at the top of the cube ({})",
        white.len()
    );
    white.sort_by(f32::total_cmp);
    white[white.len() / 2]
}

#[test]
fn desktop_app_survives_a_lost_device_and_shows_the_image() {
    // With the step cache on, as its menu would set it: the image still shows, and the status
    // says how many steps the cache skipped.
    let saved = std::env::temp_dir().join(format!("ptdit-desktop-save-{}.png", std::process::id()));
    let (w, h, rgb, stdout) = run_with_screenshot(
        "desktop",
        "red apple",
        &[
            "--cache",
            "heavy",
            "--lose-device-after-steps",
            "3",
            "--save",
            saved.to_str().unwrap(),
        ],
    );
    assert!(
        stdout.contains("1 in Recent"),
        "the generation is not in Recent: {stdout}"
    );
    // Save PNG writes the settings that made the image (those of the restarted generation).
    let text = ptdit::pipeline::png::read_text(&std::fs::read(&saved).unwrap()).unwrap();
    let s = ptdit::pipeline::settings::ImageSettings::from_text(&text).unwrap();
    assert_eq!(
        (s.prompt.as_str(), s.cache.as_str(), s.steps),
        ("red apple", "heavy", 30)
    );
    assert!(
        stdout.contains("device was lost")
            && stdout.contains("the engine started again on a new device"),
        "the app did not start its engine again: {stdout}"
    );
    assert!(
        stdout.contains("done:") && stdout.contains("skipped by the step cache"),
        "the app did not finish generating with the cache: {stdout}"
    );
    // The image panel (right of the 260 px controls) shows the emoji enlarged: its white
    // background and bright colours; the dark UI theme (below 80) has neither.
    let panel = (300, 20, w - 20, h - 20);
    let lit = lit_share(w, &rgb, panel, 150);
    assert!(lit > 0.5, "no image in the panel ({lit} lit)");
    assert!(
        coloured(w, &rgb, (280, 0, w, h)) > 200,
        "the image has no colour"
    );
}

//! The embedding API: generation sliced into per-frame budgets on a borrowed device, written
//! into the host's texture. Native only (reads the texture back with a blocking poll).

use crate::common::gpu;
use ptdit::embed::{rgba8_reference, Budget, Generation};
use ptdit::pipeline::default_model;
use ptdit::pipeline::generate::{Request, TextToImage};
use ptdit::pipeline::model_dir;
use ptdit::GpuContext;

/// The host's device, lent to the engine: the test context's device and queue, borrowed.
fn host() -> (GpuContext, TextToImage) {
    let own = gpu();
    let ctx = GpuContext::borrowed(own.device.clone(), own.queue.clone(), None);
    let comps = model_dir::from_files(&default_model::files()).unwrap();
    let pipe = TextToImage::new(&ctx, comps).unwrap();
    (ctx, pipe)
}

/// The texture's RGBA bytes (the host's business; generation never reads back).
fn read_texture(ctx: &GpuContext, t: &wgpu::Texture) -> Vec<u8> {
    pollster::block_on(ptdit::embed::read_texture_rgba(ctx, t)).unwrap()
}

fn request(pipe: &TextToImage) -> Request {
    Request {
        steps: 3,
        seed: 11,
        ..pipe.request("red apple")
    }
}

#[test]
fn slices_write_each_step_into_the_host_texture_and_match_one_shot_generation() {
    let (ctx, pipe) = host();
    let req = request(&pipe);
    let texture = ctx
        .device
        .create_texture(&Generation::texture_descriptor(&req));
    let mut g = pollster::block_on(Generation::new(&pipe, &req, &texture)).unwrap();
    let per_step = g.dispatches_per_step();
    assert!(per_step > 20, "a step has {per_step} dispatches");

    // An odd budget makes steps straddle calls.
    let budget = per_step / 3 + 1;
    let mut calls = 0;
    let mut after_first = None;
    loop {
        let p = g.advance(Budget::Dispatches(budget)).unwrap();
        calls += 1;
        if p.step == 1 && after_first.is_none() {
            // The preview of step 1 is in the texture, exactly the latents written as bytes.
            let l = pollster::block_on(g.latents()).unwrap();
            after_first = Some(());
            assert_eq!(read_texture(&ctx, &texture), rgba8_reference(&l, 1));
        }
        if p.done {
            assert_eq!(p.step, 3);
            break;
        }
        assert!(calls < 100, "no progress");
    }
    assert_eq!(calls, (3 * per_step).div_ceil(budget));
    let sliced = read_texture(&ctx, &texture);

    // The same request in one go through the ordinary pipeline gives the same pixels.
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    let rgb: Vec<u8> = sliced.chunks(4).flat_map(|p| p[..3].to_vec()).collect();
    assert_eq!(rgb, frames[0].rgb, "sliced and one-shot generation agree");
    assert!(sliced.chunks(4).all(|p| p[3] == 255), "opaque");

    // Whole steps as the budget; advancing a finished run does nothing.
    let mut g = pollster::block_on(Generation::new(&pipe, &req, &texture)).unwrap();
    assert_eq!(g.advance(Budget::Steps(2)).unwrap().step, 2);
    assert!(g.advance(Budget::Steps(5)).unwrap().done);
    assert!(g.advance(Budget::Steps(1)).unwrap().done);
    assert_eq!(read_texture(&ctx, &texture), sliced);
}

#[test]
fn a_texture_that_does_not_fit_is_refused_with_the_reason() {
    let (ctx, pipe) = host();
    let req = request(&pipe);
    let mut d = Generation::texture_descriptor(&req);
    d.size.width = 48;
    let small = ctx.device.create_texture(&d);
    let e = pollster::block_on(Generation::new(&pipe, &req, &small))
        .err()
        .expect("wrong size is an error")
        .to_string();
    assert!(e.contains("48x32") && e.contains("32x32"), "{e}");

    let mut d = Generation::texture_descriptor(&req);
    d.format = wgpu::TextureFormat::Bgra8Unorm;
    let bgra = ctx.device.create_texture(&d);
    let e = pollster::block_on(Generation::new(&pipe, &req, &bgra))
        .err()
        .expect("BGRA is an error")
        .to_string();
    assert!(e.contains("Rgba8Unorm"), "{e}");
}

#[test]
fn the_texture_writer_matches_its_cpu_reference_when_upscaling() {
    // A VAE model's previews are its latents, one texel block per latent: the tiny random model
    // (8×8 latents, 64×64 px) writes each latent as an 8×8 block.
    let own = gpu();
    let comps = model_dir::from_files(&crate::common::tiny::tiny_model_files()).unwrap();
    let pipe = TextToImage::new(&own, comps).unwrap();
    let req = Request {
        width: 64,
        height: 64,
        steps: 2,
        ..pipe.request("a red apple")
    };
    let texture = own
        .device
        .create_texture(&Generation::texture_descriptor(&req));
    let mut g = pollster::block_on(Generation::new(&pipe, &req, &texture)).unwrap();
    assert!(g.advance(Budget::Steps(2)).unwrap().done);
    let l = pollster::block_on(g.latents()).unwrap();
    assert_eq!(read_texture(&own, &texture), rgba8_reference(&l, 8));
    // The final decode replaces the preview with the decoded image.
    pollster::block_on(g.decode()).unwrap();
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    let rgb: Vec<u8> = read_texture(&own, &texture)
        .chunks(4)
        .flat_map(|p| p[..3].to_vec())
        .collect();
    assert_eq!(rgb, frames[0].rgb);
}

/// A game with fixed prompts ships their embeddings: the built-in model without its text
/// encoder, driven by the embedding API, draws what the full model draws for the prompt.
#[test]
fn embeddings_drive_a_generation_without_the_text_encoder() {
    let (ctx, full) = host();
    let req = request(&full);
    let emb = pollster::block_on(full.encode(&req.prompt, &req.negative_prompt)).unwrap();
    let want = pollster::block_on(full.generate(&req, |_, _, _| true, false)).unwrap();
    drop(full);

    let mut comps = model_dir::from_files(&default_model::files()).unwrap();
    comps.drop_text_encoder();
    let pipe = TextToImage::new(&ctx, comps).unwrap();
    let req = Request {
        prompt: String::new(),
        embeddings: Some(emb),
        ..req
    };
    let texture = ctx
        .device
        .create_texture(&Generation::texture_descriptor(&req));
    let mut g = pollster::block_on(Generation::new(&pipe, &req, &texture)).unwrap();
    assert!(g.advance(Budget::Steps(3)).unwrap().done);
    let rgb: Vec<u8> = read_texture(&ctx, &texture)
        .chunks(4)
        .flat_map(|p| p[..3].to_vec())
        .collect();
    assert_eq!(rgb, want[0].rgb);
}

/// A video's frames go to the texture's array layers, one each (a game plays them by choosing
/// the layer it samples): the built-in model's weights without their task declaration take 3
/// frames. Every layer is its frame of the latents as bytes and of one-shot generation, and
/// the layers differ (not frame 0 copied three times). A texture with the wrong layer count is
/// refused, naming both counts.
#[test]
fn a_videos_frames_are_written_to_the_textures_layers() {
    let own = gpu();
    let ctx = GpuContext::borrowed(own.device.clone(), own.queue.clone(), None);
    let comps = model_dir::from_files(&crate::common::undeclared_default_model()).unwrap();
    let pipe = TextToImage::new(&ctx, comps).unwrap();
    let req = Request {
        frames: 3,
        ..request(&pipe)
    };
    let d = Generation::texture_descriptor(&req);
    assert_eq!(d.size.depth_or_array_layers, 3);
    let texture = ctx.device.create_texture(&d);
    let mut g = pollster::block_on(Generation::new(&pipe, &req, &texture)).unwrap();
    assert!(g.advance(Budget::Steps(3)).unwrap().done);
    let got = read_texture(&ctx, &texture);
    let l = pollster::block_on(g.latents()).unwrap();
    assert_eq!(got, rgba8_reference(&l, 1));
    let layer = 32 * 32 * 4;
    assert_eq!(got.len(), 3 * layer);
    assert!(got[..layer] != got[layer..2 * layer] && got[layer..2 * layer] != got[2 * layer..]);
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let rgb: Vec<u8> = got[i * layer..][..layer]
            .chunks(4)
            .flat_map(|p| p[..3].to_vec())
            .collect();
        assert_eq!(rgb, f.rgb, "layer {i}");
    }

    let one = ctx
        .device
        .create_texture(&Generation::texture_descriptor(&Request {
            frames: 1,
            ..req.clone()
        }));
    let e = pollster::block_on(Generation::new(&pipe, &req, &one))
        .err()
        .expect("one layer for three frames is an error")
        .to_string();
    assert!(e.contains("1 layer") && e.contains("3 frame"), "{e}");
}

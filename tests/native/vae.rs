//! The CausalVAE decoder: the official fixture, and GPU vs CPU on what the fixture lacks
//! (several latent frames, non-square latents, other widths and ResNet counts).
// Native only: these drive the GPU synchronously (pollster) or use files and processes.

use crate::common::gpu;
use ptdit::formats::safetensors::TensorFile;
use ptdit::graph::cpu;
use ptdit::model::random_weights;
use ptdit::model::vae::{self, VaeConfig};
use ptdit::model::verify::{check_cpu, check_gpu, run_gpu, Comparison, VaeFixture};
use ptdit::rng::Rng;
use ptdit::{DType, HostTensor};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/vae_image_tiny.safetensors"
);

/// The f32 tolerance, max |error| ≤ 1e-3 × std; the decoder's ~20 convolutions of up to
/// 1728 terms each accumulate ~2e-5 × std here.
const TOL: f32 = 1e-3;
/// GPU vs CPU reference of the same graph (both f32, different summation order).
const GPU_VS_CPU_TOL: f32 = 1e-4;

#[test]
fn official_fixture_on_gpu() {
    let fx = VaeFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    let r = pollster::block_on(check_gpu(&fx, &gpu(), TOL, DType::F32)).unwrap();
    assert!(r.passed(), "{:?}", r.output);
    assert!(r.first_divergence().is_none(), "{:?}", r.first_divergence());
    assert_eq!(r.traces.len(), 8, "every trace of the fixture was compared");
}

#[test]
fn official_fixture_on_cpu_reference() {
    let fx = VaeFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    let r = check_cpu(&fx, TOL, DType::F32).unwrap();
    assert!(r.passed(), "{:?}", r.output);
}

fn gpu_matches_cpu(cfg: &VaeConfig, latent: [usize; 5]) {
    let graph = vae::build(cfg, latent, false).unwrap();
    let mut feeds = random_weights(&graph, 8);
    // GroupNorm weights near 1, as trained ones are.
    for (k, v) in feeds.iter_mut() {
        if k.contains("norm") && k.ends_with("weight") {
            if let ptdit::tensor::HostData::F32(d) = &mut v.data {
                d.iter_mut().for_each(|x| *x += 1.0);
            }
        }
    }
    let n = latent.iter().product();
    feeds.insert(
        vae::io::LATENTS.into(),
        HostTensor::f32(latent, Rng::new(2).normals(n, 0.2)),
    );
    let want = cpu::run(&graph, &feeds)
        .unwrap()
        .remove(vae::io::SAMPLE)
        .unwrap();
    let got = pollster::block_on(run_gpu(&gpu(), &graph, &feeds))
        .unwrap()
        .remove(vae::io::SAMPLE)
        .unwrap();
    let t_out = cfg.output_frames(latent[2]);
    let f = cfg.spatial_factor();
    assert_eq!(
        got.shape.dims(),
        &[latent[0], 3, t_out, f * latent[3], f * latent[4]]
    );
    let c = Comparison::new("vae", got.as_f32(), want.as_f32(), GPU_VS_CPU_TOL);
    assert!(c.std_ref > 1e-3, "degenerate output");
    assert!(c.passed(), "{c:?}");
}

fn small(mult: Vec<usize>, res: usize) -> VaeConfig {
    let mut c = VaeConfig::released();
    c.hidden_size = 32;
    c.hidden_size_mult = mult;
    c.num_res_blocks = res;
    c
}

#[test]
fn video_three_latent_frames_upsample_in_time() {
    // T = 3 latent frames -> 9 output frames: the time interpolation's weights matter only for
    // T >= 3, and GroupNorm statistics span all frames.
    gpu_matches_cpu(&small(vec![1, 1, 1, 1], 1), [1, 4, 3, 2, 3]);
}

#[test]
fn non_square_latent_other_widths_and_resnet_count() {
    gpu_matches_cpu(&small(vec![1, 2, 2, 1], 1), [1, 4, 1, 3, 5]);
}

#[test]
fn released_frame_arithmetic() {
    let c = VaeConfig::released();
    assert_eq!(c.output_frames(1), 1);
    assert_eq!(c.output_frames(3), 9);
    assert_eq!(c.spatial_factor(), 8);
}

#[test]
fn pixels_round_half_up_after_clamping() {
    let px = vae::to_rgb8(&[-2.0, 0.0, 1.0, 2.0 / 255.0 - 1.0, 0.5, -1.0], 1, 2);
    // Planes: R = [-2, 0], G = [1, 2/255 - 1], B = [0.5, -1].
    assert_eq!(px, vec![0, 255, 191, 128, 1, 0]);
}

#[test]
fn official_fixture_with_f16_storage() {
    let fx = VaeFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    // The f16 tolerance (3e-2 × std); the decoder's ~20 convolutions reach 1.6e-2.
    let r = pollster::block_on(check_gpu(&fx, &gpu(), 3e-2, DType::F16)).unwrap();
    assert!(r.passed(), "{:?}", r.output);
    assert!(r.output.relative() > 1e-4, "{:?}", r.output);
}

//! PT-DiT: the official fixture, the GPU forward against the CPU reference forward on configs
//! the fixture does not cover, and bad input.
// Native only: these drive the GPU synchronously (pollster) or use files and processes.

use std::collections::HashMap;

use crate::common::gpu;
use ptdit::formats::safetensors::TensorFile;
use ptdit::graph::cpu;
use ptdit::model::verify::{check_cpu, check_gpu, Comparison, PtditFixture};
use ptdit::model::{ptdit as net, random_weights, ForwardInputs, Ptdit, PtditConfig, Shapes};
use ptdit::rng::Rng;
use ptdit::{DType, HostTensor};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ptdit_tiny_square.safetensors"
);

/// The tolerance for the official fixture in f32: max |error| ≤ 1e-3 × std(reference).
const FIXTURE_TOL: f32 = 1e-3;

/// GPU against the CPU reference of the same graph: both are f32 and differ only in summation
/// order and the GPU's exp/inverseSqrt ulps; one block accumulates ~1e-6 relative error, so
/// 1e-4 × std leaves a wide margin while any indexing or broadcasting error (≥ 1e-2) fails.
const GPU_VS_CPU_TOL: f32 = 1e-4;

#[test]
fn official_fixture_on_gpu() {
    let fx = PtditFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    let report = pollster::block_on(check_gpu(&fx, &gpu(), FIXTURE_TOL, DType::F32)).unwrap();
    assert!(report.passed(), "{:?}", report.output);
    assert_eq!(
        report.traces.len(),
        2,
        "the fixture's block traces were compared"
    );
    assert!(
        report.first_divergence().is_none(),
        "{:?}",
        report.first_divergence()
    );
}

#[test]
fn official_fixture_on_cpu_reference() {
    let fx = PtditFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    let report = check_cpu(&fx, FIXTURE_TOL, DType::F32).unwrap();
    assert!(report.passed(), "{:?}", report.output);
}

fn config(heads: usize, head_dim: usize, window: [usize; 3], proxy: [usize; 3]) -> PtditConfig {
    PtditConfig {
        num_attention_heads: heads,
        attention_head_dim: head_dim,
        in_channels: 4,
        out_channels: Some(8),
        num_layers: 2,
        cross_attention_dim: Some(heads * head_dim),
        caption_channels: 24,
        patch_size: 2,
        compress_ratios: window,
        proxy_compress_ratios: proxy,
        norm_eps: 1e-6,
        shift_window: true,
        attention_bias: true,
        activation_fn: Some("gelu-approximate".into()),
        norm_type: Some("ada_norm_single".into()),
        norm_elementwise_affine: Some(false),
        quantization: None,
    }
}

fn inputs(cfg: &PtditConfig, s: &Shapes, seed: u64) -> ForwardInputs {
    let mut r = Rng::new(seed);
    let p = cfg.patch_size;
    let lshape = vec![
        s.batch,
        cfg.in_channels,
        s.grid.frames,
        s.grid.rows * p,
        s.grid.cols * p,
    ];
    let n: usize = lshape.iter().product();
    let latent = HostTensor::f32(lshape, r.normals(n, 1.0));
    let text = HostTensor::f32(
        [s.batch, s.text_len, cfg.caption_channels],
        r.normals(s.batch * s.text_len * cfg.caption_channels, 1.0),
    );
    // Different timesteps per batch item (catches the official code's batch-mixing quirk) and
    // different padding per item.
    let timestep = (0..s.batch).map(|b| 1000.0 - 380.0 * b as f32).collect();
    let text_mask = (0..s.batch * s.text_len)
        .map(|i| {
            if i % s.text_len < s.text_len - (i / s.text_len) - 1 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    ForwardInputs {
        latent,
        timestep,
        text,
        text_mask,
    }
}

/// Runs the model on the GPU and on the CPU reference forward; returns |err| / std.
fn gpu_matches_cpu(cfg: &PtditConfig, batch: usize, frames: usize, h: usize, w: usize) -> f32 {
    let grid = cfg.grid(frames, h, w).unwrap();
    let shapes = Shapes {
        batch,
        grid,
        text_len: 5,
        traces: false,
    };
    let graph = net::build(cfg, &shapes).unwrap();
    let weights = random_weights(&graph, 7);
    let ins = inputs(cfg, &shapes, 3);
    let mut feeds: HashMap<String, HostTensor> = weights.clone();
    feeds.extend(ins.feeds(&shapes).unwrap());
    let want = cpu::run(&graph, &feeds)
        .unwrap()
        .remove(net::io::SAMPLE)
        .unwrap();
    let model = pollster::block_on(Ptdit::new(&gpu(), cfg, shapes, &weights)).unwrap();
    let got = pollster::block_on(model.forward(&ins)).unwrap();
    assert_eq!(got.shape, want.shape);
    let c = Comparison::new("sample", got.as_f32(), want.as_f32(), GPU_VS_CPU_TOL);
    assert!(c.std_ref > 1e-3, "the output is not degenerate");
    assert!(
        c.passed(),
        "GPU vs CPU: max|err| {:e} > {:e} (std {:e})",
        c.max_abs_err,
        c.tolerance,
        c.std_ref
    );
    c.relative()
}

#[test]
fn non_square_grid() {
    gpu_matches_cpu(&config(2, 16, [1, 4, 4], [1, 4, 4]), 2, 1, 16, 24);
}

#[test]
fn head_size_72_batch_1() {
    gpu_matches_cpu(&config(2, 72, [1, 4, 4], [1, 4, 4]), 1, 1, 16, 16);
}

#[test]
fn video_frames_4_windows_2_4_4() {
    gpu_matches_cpu(&config(2, 16, [2, 4, 4], [2, 4, 4]), 1, 4, 16, 16);
}

#[test]
fn several_proxies_per_window() {
    gpu_matches_cpu(&config(2, 16, [1, 4, 4], [1, 2, 2]), 2, 1, 16, 16);
}

#[test]
fn without_shifted_windows() {
    let mut cfg = config(2, 16, [1, 4, 4], [1, 4, 4]);
    cfg.shift_window = false;
    gpu_matches_cpu(&cfg, 2, 1, 8, 16);
}

#[test]
fn sizes_that_do_not_fit_the_windows_name_the_nearest_valid_size() {
    let cfg = config(2, 16, [1, 4, 4], [1, 4, 4]);
    let e = cfg.grid(1, 18, 16).unwrap_err().to_string();
    assert!(
        e.contains("height 18")
            && e.contains("multiple of 8")
            && e.contains("nearest valid height is 16"),
        "{e}"
    );
    let e = cfg.grid(1, 16, 30).unwrap_err().to_string();
    assert!(e.contains("nearest valid width is 32"), "{e}");
    let video = config(2, 16, [2, 4, 4], [2, 4, 4]);
    let e = video.grid(3, 16, 16).unwrap_err().to_string();
    assert!(e.contains("frame count 3"), "{e}");
}

#[test]
fn missing_unexpected_and_misshapen_weights_are_listed_together() {
    let cfg = config(2, 16, [1, 4, 4], [1, 4, 4]);
    let shapes = Shapes {
        batch: 1,
        grid: cfg.grid(1, 8, 8).unwrap(),
        text_len: 5,
        traces: false,
    };
    let graph = net::build(&cfg, &shapes).unwrap();
    let mut w = random_weights(&graph, 1);
    w.remove("transformer_blocks.1.attn3.to_k.weight");
    w.remove("proj_out.bias");
    w.insert("transformer_blocks.0.bogus".into(), HostTensor::zeros([3]));
    w.insert(
        "transformer_blocks.0.linear_2.bias".into(),
        HostTensor::zeros([31]),
    );
    let e = match pollster::block_on(Ptdit::new(&gpu(), &cfg, shapes, &w)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("bad weights were accepted"),
    };
    for needle in [
        "missing keys (2)",
        "transformer_blocks.1.attn3.to_k.weight",
        "proj_out.bias",
        "unexpected keys (1)",
        "transformer_blocks.0.bogus",
        "linear_2.bias: expected (32,), found (31,)",
    ] {
        assert!(e.contains(needle), "`{needle}` not in: {e}");
    }
}

#[test]
fn weights_in_f16_and_bf16_load_like_f32() {
    use safetensors::{serialize, Dtype};
    let vals = [0.5f32, -1.25, 3.0, 1e-3];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let a = safetensors::tensor::TensorView::new(Dtype::F16, vec![2, 2], &f16).unwrap();
    let b = safetensors::tensor::TensorView::new(Dtype::BF16, vec![4], &bf16).unwrap();
    let bytes = serialize([("module.a", a), ("b", b)], None).unwrap();
    let f = TensorFile::parse(&bytes).unwrap();
    assert_eq!(
        f.get("a").unwrap().as_f32(),
        &[0.5, -1.25, 3.0, half::f16::from_f32(1e-3).to_f32()]
    );
    assert_eq!(f.get("b").unwrap().shape.dims(), &[4]);
    assert_eq!(f.get("b").unwrap().as_f32()[1], -1.25);
}

#[test]
fn corrupt_and_truncated_files_are_reported() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let e = TensorFile::parse(&bytes[..bytes.len() / 2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    let e = TensorFile::parse(b"garbage").unwrap_err().to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    let e = TensorFile::read("/nonexistent/model.safetensors")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/model.safetensors"), "{e}");
}

#[test]
fn nan_inputs_are_rejected_before_running() {
    let fx = PtditFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    let model =
        pollster::block_on(Ptdit::new(&gpu(), &fx.config, fx.shapes, &fx.file.tensors)).unwrap();
    let mut bad = fx.inputs.clone();
    if let ptdit::tensor::HostData::F32(v) = &mut bad.latent.data {
        v[17] = f32::NAN;
    }
    let e = pollster::block_on(model.forward(&bad))
        .unwrap_err()
        .to_string();
    assert!(e.contains("latent") && e.contains("non-finite"), "{e}");
    let mut bad = fx.inputs.clone();
    bad.timestep[0] = f32::INFINITY;
    assert!(pollster::block_on(model.forward(&bad)).is_err());
}

/// The f16 tolerance: f16 storage rounds every activation and weight to 11 bits
/// (relative 4.9e-4), and the roundings of two blocks add up to a few 1e-3 of the spread.
const F16_TOL: f32 = 3e-2;

#[test]
fn official_fixture_with_f16_storage() {
    let fx = PtditFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    let r = pollster::block_on(check_gpu(&fx, &gpu(), F16_TOL, DType::F16)).unwrap();
    assert!(r.passed(), "{:?}", r.output);
    // f16 really was used: the error is far above f32's.
    assert!(r.output.relative() > 1e-4, "{:?}", r.output);
}

/// `ptdit bench profile` reports time per attention kind and matmul shape through these labels:
/// each of a block's five attentions must be told apart, and the labels must account for every
/// FLOP the ops count.
#[test]
fn profile_labels_tell_every_attention_kind_and_matmul_shape_apart() {
    let cfg = config(2, 8, [1, 2, 2], [1, 2, 2]);
    let shapes = Shapes {
        batch: 2,
        grid: cfg.grid(1, 8, 8).unwrap(),
        text_len: 5,
        traces: false,
    };
    let graph = net::build(&cfg, &shapes).unwrap();
    let labels = graph.labels();
    // 4x4 tokens in 2x2 windows: 4 windows of 4 tokens per image, one proxy each, batch 2.
    for want in [
        "attention, proxy self (2 x 4q x 4k)",
        "attention, proxy to latent cross (2 x 16q x 4k)",
        "attention, window (8 x 4q x 4k)",
        "attention, shifted window (8 x 4q x 4k)",
        "attention, text cross (2 x 16q x 5k)",
    ] {
        let n = labels.iter().filter(|l| *l == want).count();
        assert_eq!(n, cfg.num_layers, "`{want}` once per layer in {labels:?}");
    }
    // The patch embedding: 2x2 patches of 4 channels onto width 16, for 2 x 16 tokens.
    assert!(
        labels.iter().any(|l| l == "matmul 32x16x16"),
        "no patch-embedding matmul label in {labels:?}"
    );
    let by_label: u64 = graph.flops_by_label().iter().map(|(_, f)| f).sum();
    assert_eq!(by_label, graph.flops());
}

/// f16 arithmetic (`Tuning::f16_math`) in both kernels that have it, each forced onto every
/// product, on the official fixture: sums of a K slice in f16 add roundings of the same order
/// as f16 storage's (tests/ops.rs bounds them at ~1.4e-3 of a product's scale), so the f16
/// tolerance holds; the error differs from f16 storage alone, so the f16 sums really ran.
#[test]
fn official_fixture_with_f16_arithmetic() {
    use ptdit::kernel::{MatmulKernel, Tuning};
    // Its own device: the tuning set here must not reach the other tests.
    let ctx = ptdit::GpuContext::new_blocking().expect("GPU tests need a WebGPU adapter");
    assert!(
        ctx.has_f16(),
        "f16 arithmetic needs shader-f16, which lavapipe has"
    );
    let fx = PtditFixture::from_file(TensorFile::read(FIXTURE).unwrap()).unwrap();
    for matmul in [MatmulKernel::Tiled, MatmulKernel::Wide] {
        assert!(matmul.has_f16_math());
        let mut errors = Vec::new();
        for f16_math in [false, true] {
            ctx.set_tuning(Tuning {
                matmul,
                per_shape: false,
                f16_math,
                ..Tuning::default()
            });
            let r = pollster::block_on(check_gpu(&fx, &ctx, F16_TOL, DType::F16)).unwrap();
            assert!(
                r.passed(),
                "{} f16_math={f16_math}: {:?}",
                matmul.name(),
                r.output
            );
            errors.push(r.output.relative());
        }
        assert_ne!(
            errors[0],
            errors[1],
            "{}: f16 math changed nothing",
            matmul.name()
        );
    }
}

/// The forward with the projections that read one input fused (q/k/v in the three
/// self-attentions, k/v in the two cross-attentions: one matmul each, the attention reading
/// its operands in place) against the same forward with them apart, from the same checkpoint
/// keys: 8 fewer matmuls a block; on the CPU reference the same numbers (every output element
/// is the same sum either way), on the GPU within the usual GPU-vs-CPU tolerance.
#[test]
fn fused_projections_give_the_forward_with_them_apart() {
    let cfg = config(2, 16, [1, 4, 4], [1, 2, 2]);
    let shapes = Shapes {
        batch: 2,
        grid: cfg.grid(1, 16, 16).unwrap(),
        text_len: 5,
        traces: false,
    };
    let fused = net::build(&cfg, &shapes).unwrap();
    let mut apart = ptdit::Graph::new();
    apart.keep_projections_apart(true);
    let o = net::build_into(&mut apart, &cfg, &shapes).unwrap();
    apart.output(o, net::io::SAMPLE).unwrap();
    let matmuls = |g: &ptdit::Graph| g.nodes().iter().filter(|n| n.op.name() == "matmul").count();
    assert_eq!(matmuls(&apart) - matmuls(&fused), 8 * cfg.num_layers);

    let weights = random_weights(&fused, 7);
    let mut keys: Vec<&String> = weights.keys().collect();
    let apart_weights = random_weights(&apart, 7);
    let mut apart_keys: Vec<&String> = apart_weights.keys().collect();
    keys.sort();
    apart_keys.sort();
    assert_eq!(keys, apart_keys, "both read the checkpoint's own keys");
    assert!(keys.iter().all(|k| !k.contains('+')));

    let ins = inputs(&cfg, &shapes, 3);
    let mut feeds: HashMap<String, HostTensor> = weights.clone();
    feeds.extend(ins.feeds(&shapes).unwrap());
    let run = |g: &ptdit::Graph| {
        cpu::run(g, &feeds)
            .unwrap()
            .remove(net::io::SAMPLE)
            .unwrap()
    };
    let want = run(&apart);
    assert_eq!(run(&fused).as_f32(), want.as_f32());

    let model = pollster::block_on(Ptdit::new(&gpu(), &cfg, shapes, &weights)).unwrap();
    let got = pollster::block_on(model.forward(&ins)).unwrap();
    let c = Comparison::new("sample", got.as_f32(), want.as_f32(), GPU_VS_CPU_TOL);
    assert!(c.passed(), "fused on the GPU vs apart on the CPU: {c:?}");
}

//! Packed Linear weights (bf16, q8, q4) on the official fixtures: the error against the golden
//! outputs stays within what each format is allowed (`linear_storage_tolerance`), and the GPU
//! agrees with the CPU reference on the same packed weights as closely as in f32, so what error
//! there is comes from the format, not the kernels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::gpu;
use ptdit::formats::safetensors::TensorFile;
use ptdit::graph::cpu;
use ptdit::model::verify::{check_gpu, linear_storage_tolerance, run_gpu, Comparison, Fixture};
use ptdit::pipeline::default_model;
use ptdit::pipeline::embeddings::PromptEmbeddings;
use ptdit::pipeline::generate::{Request, TextToImage};
use ptdit::pipeline::model_dir::{self, Components};
use ptdit::pipeline::quantize::{quantize_dir, Plan};
use ptdit::DType;
use ptdit::HostTensor;

const FIXTURES: [&str; 2] = ["ptdit_tiny_square", "t5_tiny"];

fn fixture(name: &str, linear: DType) -> Fixture {
    let path = format!(
        "{}/tests/fixtures/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    Fixture::stored(TensorFile::read(path).unwrap(), Some(linear)).unwrap()
}

#[test]
fn fixtures_within_each_formats_error() {
    let ctx = gpu();
    let mut failures = Vec::new();
    for linear in [DType::BF16, DType::Q8, DType::Q4] {
        let (max_tol, rms_tol) = linear_storage_tolerance(linear);
        for name in FIXTURES {
            let fx = fixture(name, linear);
            let r =
                pollster::block_on(check_gpu(fx.0.as_ref(), &ctx, max_tol, DType::F32)).unwrap();
            let (max, rms) = (r.output.relative(), r.output.relative_rms());
            println!(
                "{name} {}: max|err|/std {max:.2e}, rms/std {rms:.2e}",
                linear.name()
            );
            if !(max <= max_tol && rms <= rms_tol) {
                failures.push(format!(
                    "{name} {}: max {max:.3e} (≤ {max_tol}), rms {rms:.3e} (≤ {rms_tol})",
                    linear.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Both sides read the same packed values (the CPU reference unpacks what the GPU holds), so
/// the whole models' f32 GPU-vs-CPU tolerance holds on every output and trace: 1e-4 × std.
#[test]
fn gpu_matches_cpu_reference_on_packed_weights() {
    let ctx = gpu();
    for linear in [DType::BF16, DType::Q8, DType::Q4] {
        for name in FIXTURES {
            let fx = fixture(name, linear);
            let (graph, feeds) = fx.0.graph_and_feeds(DType::F32).unwrap();
            let want = cpu::run(&graph, &feeds).unwrap();
            let got = pollster::block_on(run_gpu(&ctx, &graph, &feeds)).unwrap();
            assert!(!want.is_empty());
            for (key, w) in &want {
                let c = Comparison::new(key, got[key].as_f32(), w.as_f32(), 1e-4);
                assert!(c.passed(), "{name} {} `{key}`: {c:?}", linear.name());
            }
        }
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ptdit-quant-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn image(c: Components) -> Vec<u8> {
    let pipe = TextToImage::new(&gpu(), c).unwrap();
    let req = Request {
        prompt: "red apple".into(),
        width: 32,
        height: 32,
        steps: 4,
        seed: 3,
        ..Request::default()
    };
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    frames[0].rgb.clone()
}

/// The plan the built-in model is quantized with here: q8 transformer, q4 text encoder.
const PLAN: Plan = Plan {
    transformer: Some(DType::Q8),
    text_encoder: Some(DType::Q4),
    rest_bf16: false,
};

/// The built-in model quantized by `ptdit quantize` (its Linears all have K a multiple of 32).
fn quantized_emoji(name: &str) -> (PathBuf, PathBuf) {
    let (src, out) = (tmp(&format!("{name}-src")), tmp(&format!("{name}-out")));
    crate::common::write_model_dir(&src, &default_model::files());
    let written = quantize_dir(&src, &out, PLAN).unwrap();
    let packed: Vec<(&str, usize)> = written
        .iter()
        .map(|w| (w.component.as_str(), w.packed_tensors))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(packed, [("transformer", 150), ("text_encoder", 14)]);
    (src, out)
}

/// A packed text encoder keeps its token table on the host as q8 rows (the largest host
/// allocation of the released pipeline: 0.49 GiB in f32), streamed in without an f32 copy:
/// each row is the float row through q8's round trip, a little over a quarter of f32's bytes.
#[test]
fn a_packed_text_encoder_keeps_its_token_table_as_q8_rows() {
    let (src, out) = quantized_emoji("table");
    let packed = model_dir::open(&gpu(), &out, DType::F32).unwrap();
    let weights = packed.text_encoder_weights.device().unwrap();
    let table = weights.host(ptdit::model::t5::EMBED_KEY).unwrap();
    let file = TensorFile::read(src.join("text_encoder/model.safetensors")).unwrap();
    let float = file.get(ptdit::model::t5::EMBED_KEY).unwrap();
    let (rows, width) = (float.shape.dims()[0], float.shape.dims()[1]);
    assert_eq!(table.kept_as(), "q8");
    assert_eq!(table.bytes(), rows * width + 2 * rows * width / 32);
    let mut got = Vec::new();
    for i in 0..rows {
        table.row_into(i, &mut got).unwrap();
    }
    let expect = ptdit::quant::round_trip(DType::Q8, float.as_f32());
    assert_eq!(got, expect, "a row differs from its q8 round trip");
    let float_dir = model_dir::open(&gpu(), &src, DType::F32).unwrap();
    let kept = float_dir.text_encoder_weights.device().unwrap();
    let kept = kept.host(ptdit::model::t5::EMBED_KEY).unwrap();
    assert_eq!(
        kept.kept_as(),
        "f32",
        "a float component keeps its table exact"
    );
}

/// A directory written by `ptdit quantize` loads without a flag, streamed or whole, and gives
/// bit for bit the image of the float directory packed as it loads (the same packing, done by
/// the upload instead of the tool), which differs from the float image.
#[test]
fn a_quantized_directory_gives_the_image_of_packing_on_load() {
    let (src, out) = quantized_emoji("load");
    let streamed = image(model_dir::open(&gpu(), &out, DType::F32).unwrap());
    let whole = image(model_dir::load(&out).unwrap());
    assert_eq!(streamed, whole, "streamed and whole-file loads differ");

    let float = image(model_dir::load(&src).unwrap());
    let mut on_load = default_model::files();
    for (comp, s) in [("transformer", "q8"), ("text_encoder", "q4")] {
        let key = format!("{comp}/config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&on_load[&key]).unwrap();
        cfg["quantization"] = serde_json::json!({"format_version": 1, "linear": s});
        on_load.insert(key, cfg.to_string().into_bytes());
    }
    let packed_on_load = image(model_dir::from_files(&on_load).unwrap());
    assert_eq!(
        streamed, packed_on_load,
        "ptdit quantize and packing on load differ"
    );
    assert_ne!(streamed, float, "quantization changed nothing");
    let mean = streamed
        .iter()
        .zip(&float)
        .map(|(a, b)| (*a as f32 - *b as f32).abs())
        .sum::<f32>()
        / float.len() as f32;
    println!("mean |q8/q4 − float| = {mean:.2} of 255");
}

/// The files of a quantized directory, with `edit` applied to a transformer tensor list
/// (key → (dtype, shape, bytes)) and its config, then loaded: the error.
fn load_error(
    out: &Path,
    edit: impl FnOnce(
        &mut BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>,
        &mut serde_json::Value,
    ),
) -> String {
    let mut files = model_dir::read_dir(out).unwrap();
    let st =
        safetensors::SafeTensors::deserialize(&files["transformer/model.safetensors"]).unwrap();
    let mut tensors: BTreeMap<_, _> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&files["transformer/config.json"]).unwrap();
    edit(&mut tensors, &mut cfg);
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, (d, s, b))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    files.insert(
        "transformer/model.safetensors".into(),
        safetensors::serialize(views, None).unwrap(),
    );
    files.insert(
        "transformer/config.json".into(),
        cfg.to_string().into_bytes(),
    );
    let result = model_dir::from_files(&files).and_then(|c| TextToImage::new(&gpu(), c));
    match result {
        Ok(_) => panic!("the edited directory loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_quantized_weights_are_refused_naming_the_tensor() {
    let (_, out) = quantized_emoji("bad");
    let key = "transformer_blocks.0.attn1.to_q.weight";
    let scale = format!("{key}_scale");
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "wrong scale shape",
            load_error(&out, |t, _| {
                let s = t.get_mut(&scale).unwrap();
                s.1 = vec![s.1[0] * s.1[1]];
            }),
            vec![scale.clone(), "must be F16".into()],
        ),
        (
            "missing scales",
            load_error(&out, |t, _| {
                t.remove(&scale);
            }),
            vec!["missing".into(), scale.clone()],
        ),
        (
            "unknown format version",
            load_error(&out, |_, c| c["quantization"]["format_version"] = 7.into()),
            vec!["format_version 7".into()],
        ),
        (
            "another block size",
            load_error(&out, |_, c| c["quantization"]["block_size"] = 64.into()),
            vec!["block_size 64".into()],
        ),
        (
            "quantized tensors in a float component",
            load_error(&out, |_, c| {
                c.as_object_mut().unwrap().remove("quantization");
            }),
            vec![key.into(), "quantized (I8) in the file".into()],
        ),
        (
            "q4 values where q8 is declared",
            load_error(&out, |t, _| {
                let v = t.get_mut(key).unwrap();
                v.0 = safetensors::Dtype::U8;
                v.1[1] /= 2;
                v.2.truncate(v.2.len() / 2);
            }),
            vec![key.into(), "quantized (U8) in the file".into()],
        ),
    ];
    for (what, err, needles) in cases {
        for n in needles {
            assert!(err.contains(&n), "{what}: `{err}` does not name `{n}`");
        }
    }
}

fn request(embeddings: Option<PromptEmbeddings>) -> Request {
    Request {
        prompt: "red apple".into(),
        width: 32,
        height: 32,
        steps: 3,
        seed: 5,
        embeddings,
        ..Request::default()
    }
}

/// A model directory without `text_encoder/` and `tokenizer/` generates from prompt embeddings
/// (the image the full directory gives for the prompt) and says what is missing without them.
#[test]
fn a_directory_without_a_text_encoder_generates_from_embeddings() {
    let (_, out) = quantized_emoji("notext");
    let full =
        TextToImage::new(&gpu(), model_dir::open(&gpu(), &out, DType::F32).unwrap()).unwrap();
    let emb = pollster::block_on(full.encode("red apple", "")).unwrap();
    let want = pollster::block_on(full.generate(&request(None), |_, _, _| true, false)).unwrap();
    drop(full);

    for comp in ["text_encoder", "tokenizer"] {
        std::fs::remove_dir_all(out.join(comp)).unwrap();
    }
    let pipe =
        TextToImage::new(&gpu(), model_dir::open(&gpu(), &out, DType::F32).unwrap()).unwrap();
    let err = pollster::block_on(pipe.generate(&request(None), |_, _, _| true, false)).unwrap_err();
    assert!(err.to_string().contains("no text encoder"), "{err}");
    let got = pollster::block_on(pipe.generate(&request(Some(emb.clone())), |_, _, _| true, false))
        .unwrap();
    assert_eq!(got, want);

    // Embeddings that do not fit the transformer are refused, naming the shapes.
    let mut bad = emb;
    bad.cond = HostTensor::f32([1, 2, 3], vec![0.0; 6]);
    let err =
        pollster::block_on(pipe.generate(&request(Some(bad)), |_, _, _| true, false)).unwrap_err();
    assert!(err.to_string().contains("(1, 2, 3)"), "{err}");
}

/// `--preset small` (q4 T5, q8 PT-DiT, every other f32 tensor in bf16: the tiny random model's
/// norms, tables and VAE) loads and draws.
#[test]
fn the_small_preset_loads_and_draws() {
    let (src, out) = (tmp("small-src"), tmp("small-out"));
    crate::common::write_model_dir(&src, &crate::common::tiny::tiny_model_files());
    let written = quantize_dir(&src, &out, Plan::preset("small").unwrap()).unwrap();
    assert!(written
        .iter()
        .any(|w| w.component == "transformer" && w.packed_tensors > 0));
    for (file, key) in [
        ("transformer", "scale_shift_table"),
        ("vae", "decoder.conv_in.conv.weight"),
    ] {
        let st = std::fs::read(out.join(format!("{file}/model.safetensors"))).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st).unwrap();
        assert_eq!(
            st.tensor(key).unwrap().dtype(),
            safetensors::Dtype::BF16,
            "{key}"
        );
    }
    let pipe =
        TextToImage::new(&gpu(), model_dir::open(&gpu(), &out, DType::F32).unwrap()).unwrap();
    let req = Request {
        prompt: "a red apple".into(),
        width: 64,
        height: 64,
        steps: 2,
        ..Request::default()
    };
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    let distinct: std::collections::HashSet<&u8> = frames[0].rgb.iter().collect();
    assert!(distinct.len() > 16, "the image is not flat");
}

/// `ptdit random-model`'s writer on small configs of the released structure (the full-size run
/// is documented in docs/quantization.md): the directory loads, q8 and q4 Linears and bf16
/// for the rest as asked, and a generation streams it and draws.
#[test]
fn a_random_model_of_any_storage_loads_and_draws() {
    use ptdit::pipeline::random_model::{self, RandomModel};
    let out = tmp("random");
    let model = RandomModel {
        configs: random_model::miniature(),
        plan: Plan::preset("small").unwrap(),
        text_len: 8,
        seed: 1,
    };
    model.write(&out).unwrap();
    let pipe =
        TextToImage::new(&gpu(), model_dir::open(&gpu(), &out, DType::F32).unwrap()).unwrap();
    let req = Request {
        prompt: "a red apple".into(),
        width: 128,
        height: 128,
        steps: 1,
        ..Request::default()
    };
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    assert_eq!((frames[0].width, frames[0].height), (128, 128));
    let distinct: std::collections::HashSet<&u8> = frames[0].rgb.iter().collect();
    assert!(distinct.len() > 16, "the image is not flat");
}

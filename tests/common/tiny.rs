#![allow(dead_code)]
//! A complete tiny model with random weights, as the files of a model directory (64×64 px
//! images: 8×8 latents, 4×4 tokens in 2×2 windows), for pipeline tests natively and in the
//! browser.

use std::collections::HashMap;

use ptdit::model::t5::{self, T5Config};
use ptdit::model::vae::{self, VaeConfig};
use ptdit::model::{ptdit as net, random_weights, PtditConfig, Shapes};
use ptdit::pipeline::model_dir::Files;
use ptdit::rng::Rng;
use ptdit::HostTensor;

fn save(files: &mut Files, comp: &str, config: &str, weights: &HashMap<String, HostTensor>) {
    files.insert(format!("{comp}/config.json"), config.as_bytes().to_vec());
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                bytemuck::cast_slice(v.as_f32()).to_vec(),
                v.shape.dims().to_vec(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, b, s)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let data = safetensors::serialize(views, None).unwrap();
    files.insert(format!("{comp}/model.safetensors"), data);
}

/// A Unigram tokenizer in HF's JSON format with a handful of pieces.
pub fn tokenizer_json() -> String {
    ptdit::pipeline::text::toy_tokenizer_json()
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The same vocabulary as [`tokenizer_json`], as a SentencePiece `ModelProto`.
pub fn spiece_model() -> Vec<u8> {
    let pieces = [
        "▁a", "▁red", "▁apple", "▁cat", "▁on", "▁mat", "▁", "a", "e", "p", "l", "r", "d", "c", "t",
        "o", "n", "m",
    ];
    let mut all: Vec<(String, f32, u64)> = vec![
        ("<pad>".into(), 0.0, 3),
        ("</s>".into(), 0.0, 3),
        ("<unk>".into(), 0.0, 2),
    ];
    all.extend(
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), -1.0 - i as f32 * 0.1, 1)),
    );
    let mut out = Vec::new();
    for (p, score, kind) in all {
        let mut m = Vec::new();
        field_bytes(&mut m, 1, p.as_bytes());
        varint(&mut m, 2 << 3 | 5);
        m.extend_from_slice(&score.to_le_bytes());
        varint(&mut m, 3 << 3);
        varint(&mut m, kind);
        field_bytes(&mut out, 1, &m);
    }
    out
}

/// A valid normalisation map with one rule, "a" → "b".
pub fn one_rule_charsmap() -> Vec<u8> {
    ptdit::formats::sentencepiece::one_rule_charsmap(b'b')
}

/// [`spiece_model`] with a normaliser whose `precompiled_charsmap` is `charsmap`.
pub fn spiece_model_with_charsmap(charsmap: &[u8]) -> Vec<u8> {
    let mut out = spiece_model();
    let mut spec = Vec::new();
    field_bytes(&mut spec, 2, charsmap);
    field_bytes(&mut out, 3, &spec);
    out
}

/// The files of the tiny model directory.
pub fn tiny_model_files() -> Files {
    let mut files = Files::new();
    let tcfg = r#"{"num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 4, "out_channels": 8, "num_layers": 1,
        "cross_attention_dim": 32, "caption_channels": 24, "sample_size": 8, "patch_size": 2, "compress_ratios": [1, 2, 2],
        "proxy_compress_ratios": [1, 2, 2], "attention_bias": true, "activation_fn": "gelu-approximate",
        "norm_type": "ada_norm_single", "norm_elementwise_affine": false, "norm_eps": 1e-6, "shift_window": true}"#;
    let cfg = PtditConfig::from_json(tcfg).unwrap();
    let g = net::build(
        &cfg,
        &Shapes {
            batch: 2,
            grid: cfg.grid(1, 8, 8).unwrap(),
            text_len: 4,
            traces: false,
        },
    )
    .unwrap();
    save(&mut files, "transformer", tcfg, &random_weights(&g, 1));

    let ecfg = r#"{"vocab_size": 21, "d_model": 24, "d_kv": 8, "d_ff": 48, "num_layers": 1, "num_heads": 3,
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "feed_forward_proj": "gated-gelu",
        "dense_act_fn": "gelu_new", "layer_norm_epsilon": 1e-6}"#;
    let e = T5Config::from_json(ecfg).unwrap();
    let g = t5::build(&e, 1, 4, false).unwrap();
    let mut w = random_weights(&g, 2);
    let mut r = Rng::new(3);
    w.insert(
        t5::EMBED_KEY.into(),
        HostTensor::f32([21, 24], r.normals(21 * 24, 1.0)),
    );
    w.insert(
        t5::REL_BIAS_KEY.into(),
        HostTensor::f32([32, 3], r.normals(96, 0.5)),
    );
    save(&mut files, "text_encoder", ecfg, &w);

    files.insert(
        "tokenizer/tokenizer.json".into(),
        tokenizer_json().into_bytes(),
    );

    let vcfg = r#"{"hidden_size": 32, "hidden_size_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 4, "embed_dim": 4,
        "attn_resolutions": [], "decoder_spatial_upsample": ["", "SpatialUpsample2x", "Spatial2xTime2x3DUpsample", "Spatial2xTime2x3DUpsample"],
        "decoder_temporal_upsample": ["", "", "", ""]}"#;
    let v = VaeConfig::from_json(vcfg).unwrap();
    let g = vae::build(&v, [1, 4, 1, 8, 8], false).unwrap();
    let mut w = random_weights(&g, 4);
    // GroupNorm weights near 1, as in a trained VAE, so the image has some contrast.
    for (k, v) in w.iter_mut() {
        if k.contains("norm") && k.ends_with("weight") {
            if let ptdit::tensor::HostData::F32(d) = &mut v.data {
                d.iter_mut().for_each(|x| *x += 1.0);
            }
        }
    }
    w.insert("encoder.conv_in.conv.weight".into(), HostTensor::zeros([1])); // ignored, as in the real checkpoint
    save(&mut files, "vae", vcfg, &w);
    files
}

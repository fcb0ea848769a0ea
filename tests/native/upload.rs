//! Weights onto the device: safetensors streamed in pieces of any size land as the same bytes
//! as a host upload, in f32 and f16 and from bf16 files; every kind of bad file is refused with
//! the file and the problem named, wrong headers before any tensor data is read.
// Native only: model directories are files (the browser path is tested in tests/web.rs).

use std::collections::HashMap;

use crate::common::gpu;
use ptdit::formats::safetensors::TensorFile;
use ptdit::gpu::readback::read_buffer;
use ptdit::model::ptdit as net;
use ptdit::model::upload::{upload_host, DeviceWeights, Upload, Wanted};
use ptdit::model::PtditConfig;
use ptdit::pipeline::generate::TextToImage;
use ptdit::pipeline::model_dir;
use ptdit::{DType, Error, HostTensor, LoadError};
use safetensors::{tensor::TensorView, Dtype};

const FILE: &str = "transformer/model.safetensors";

/// The tiny model's transformer: its config and its safetensors file (f32).
fn transformer() -> (PtditConfig, Vec<u8>) {
    let files = crate::common::tiny::tiny_model_files();
    let cfg = std::str::from_utf8(&files["transformer/config.json"]).unwrap();
    (PtditConfig::from_json(cfg).unwrap(), files[FILE].clone())
}

/// A safetensors file of `tensors` stored as `dtype` (f32, f16 or bf16).
fn file(tensors: &HashMap<String, HostTensor>, dtype: Dtype) -> Vec<u8> {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            let b: Vec<u8> = t
                .as_f32()
                .iter()
                .flat_map(|v| match dtype {
                    Dtype::F16 => half::f16::from_f32(*v).to_le_bytes().to_vec(),
                    Dtype::BF16 => half::bf16::from_f32(*v).to_le_bytes().to_vec(),
                    _ => v.to_le_bytes().to_vec(),
                })
                .collect();
            (k.clone(), b, t.shape.dims().to_vec())
        })
        .collect();
    let views = data
        .iter()
        .map(|(k, b, s)| (k.clone(), TensorView::new(dtype, s.clone(), b).unwrap()));
    safetensors::serialize(views, None).unwrap()
}

fn stream(bytes: &[u8], piece: usize, wanted: Wanted) -> ptdit::Result<DeviceWeights> {
    let mut up = Upload::new(&gpu(), wanted);
    for p in bytes.chunks(piece) {
        up.push(FILE, p)?;
    }
    up.end(FILE)?;
    up.finish()
}

fn device_bytes(w: &DeviceWeights) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<&str> = w.params.names().collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let p = w.params.get(n).unwrap();
            let b = pollster::block_on(read_buffer(&gpu(), &p.buffer, p.desc.padded_bytes(), n));
            (n.to_string(), b.unwrap())
        })
        .collect()
}

#[test]
fn any_piece_size_gives_the_bytes_of_a_host_upload() {
    let (cfg, f32_file) = transformer();
    let host = TensorFile::parse(&f32_file).unwrap().tensors;
    for float in [DType::F32, DType::F16] {
        let wanted = net::wanted(&cfg, float).unwrap();
        let expected = device_bytes(&upload_host(&gpu(), wanted.clone(), &host).unwrap());
        assert_eq!(expected.len(), wanted.params().len());
        // Pieces of 1 and 3 bytes split every element; 4099 splits tensors.
        for piece in [1, 3, 4099, f32_file.len()] {
            let got = device_bytes(&stream(&f32_file, piece, wanted.clone()).unwrap());
            assert!(got == expected, "{float:?}, pieces of {piece} bytes");
        }
    }
    // A bf16 file streams to the same values as the same file read whole on the host.
    let bf16_file = file(&host, Dtype::BF16);
    let bf16_host = TensorFile::parse(&bf16_file).unwrap().tensors;
    let wanted = net::wanted(&cfg, DType::F32).unwrap();
    let expected = device_bytes(&upload_host(&gpu(), wanted.clone(), &bf16_host).unwrap());
    let got = device_bytes(&stream(&bf16_file, 3, wanted).unwrap());
    assert!(got == expected, "bf16 file in 3-byte pieces");
}

#[test]
fn bad_files_are_refused_naming_the_file_and_the_problem() {
    let (cfg, good) = transformer();
    let wanted = net::wanted(&cfg, DType::F32).unwrap();
    let host = TensorFile::parse(&good).unwrap().tensors;
    let err = |bytes: &[u8], wanted: Wanted| match stream(bytes, 1000, wanted) {
        Ok(_) => panic!("a bad file was accepted"),
        Err(e) => e.to_string(),
    };
    let expect = |e: String, needles: &[&str]| {
        for n in needles {
            assert!(e.contains(n) && e.contains(FILE), "`{n}` not in: {e}");
        }
    };
    expect(
        err(&good[..good.len() - 10], wanted.clone()),
        &["truncated:", "bytes of tensor data arrived"],
    );
    expect(err(&good[..5], wanted.clone()), &["ends inside its header"]);
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 8]);
    expect(
        err(&longer, wanted.clone()),
        &["longer than its header says"],
    );
    expect(
        err(&u64::MAX.to_le_bytes(), wanted.clone()),
        &["not a valid safetensors file", "header claims"],
    );
    let mut junk = 4u64.to_le_bytes().to_vec();
    junk.extend_from_slice(b"{x:1");
    expect(err(&junk, wanted.clone()), &["bad header"]);

    // Wrong shapes and unexpected keys fail on the header alone, before any tensor data.
    let mut bad = host.clone();
    bad.insert("proj_out.bias".into(), HostTensor::zeros([5]));
    bad.insert("bogus.weight".into(), HostTensor::zeros([2]));
    let bytes = file(&bad, Dtype::F32);
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut up = Upload::new(&gpu(), wanted.clone());
    let e = up.push(FILE, &bytes[..header_len]).unwrap_err().to_string();
    expect(
        e,
        &[
            "unexpected keys (1)",
            "bogus.weight",
            "proj_out.bias: expected",
            "found (5,)",
        ],
    );

    // Missing keys are known once every file has ended.
    let mut less = host.clone();
    less.remove("proj_out.bias");
    let e = stream(&file(&less, Dtype::F32), 1000, wanted.clone()).unwrap_err();
    // Callers can tell this case apart without reading the message.
    match &e {
        Error::Load {
            error: LoadError::Mismatch { missing, .. },
            ..
        } => assert_eq!(missing, &["proj_out.bias".to_string()], "{e}"),
        other => panic!("expected a key mismatch, got: {other}"),
    }
    let e = e.to_string();
    assert!(
        e.contains("missing keys (1)") && e.contains("proj_out.bias"),
        "{e}"
    );

    // Values: NaN anywhere, and what f16 cannot hold when stored as f16.
    let mut nan = host.clone();
    let mut v = nan["proj_out.bias"].as_f32().to_vec();
    v[3] = f32::NAN;
    nan.insert("proj_out.bias".into(), HostTensor::f32([v.len()], v));
    expect(
        err(&file(&nan, Dtype::F32), wanted.clone()),
        &["proj_out.bias", "element 3 is NaN"],
    );
    let mut big = host.clone();
    let mut v = big["proj_out.bias"].as_f32().to_vec();
    v[0] = 1e6;
    big.insert("proj_out.bias".into(), HostTensor::f32([v.len()], v));
    let f16 = net::wanted(&cfg, DType::F16).unwrap();
    expect(
        err(&file(&big, Dtype::F32), f16),
        &["proj_out.bias", "element 0 is 1000000", "F16"],
    );
}

/// A model directory streamed from disk makes the same image as one read whole into memory;
/// weights streamed as f16 are refused by an f32 pipeline.
#[test]
fn a_streamed_model_directory_makes_the_same_image() {
    let dir = std::env::temp_dir().join(format!("ptdit-upload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, bytes) in crate::common::tiny::tiny_model_files() {
        let p = dir.join(&path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let req = ptdit::pipeline::generate::Request {
        prompt: "a red apple".into(),
        width: 64,
        height: 64,
        steps: 2,
        seed: 9,
        ..Default::default()
    };
    let image = |c| {
        let pipe = TextToImage::new(&gpu(), c).unwrap();
        pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap()
    };
    let whole = image(model_dir::load(&dir).unwrap());
    let streamed = image(model_dir::open(&gpu(), &dir, DType::F32).unwrap());
    assert!(whole == streamed, "streaming changed the image");

    let c = model_dir::open(&gpu(), &dir, DType::F16).unwrap();
    let e = match TextToImage::new(&gpu(), c) {
        Ok(_) => panic!("f16 weights were accepted by an f32 pipeline"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("F16") && e.contains("F32 ") && e.contains("is needed"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

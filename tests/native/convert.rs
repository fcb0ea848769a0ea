//! `ptdit convert`: a PyTorch zip checkpoint built byte by byte here (no Python needed) is
//! read without executing anything and round-trips to safetensors with its dtypes; a pickle
//! that asks for any other global is rejected.
// Native only: these drive the GPU synchronously (pollster) or use files and processes.

use std::io::Write;

use ptdit::formats::safetensors::TensorFile;
use ptdit::formats::{safetensors, torch, torch::StorageType};

fn s(out: &mut Vec<u8>, text: &str) {
    out.push(b'X');
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
}

fn tensor(
    out: &mut Vec<u8>,
    storage_type: &str,
    key: &str,
    numel: u8,
    shape: (u8, u8),
    stride: (u8, u8),
) {
    global(out, "torch._utils", "_rebuild_tensor_v2");
    out.push(b'(');
    out.push(b'(');
    s(out, "storage");
    global(out, "torch", storage_type);
    s(out, key);
    s(out, "cpu");
    out.extend_from_slice(&[b'K', numel]);
    out.push(b't');
    out.push(b'Q');
    out.extend_from_slice(&[b'K', 0]);
    out.extend_from_slice(&[b'K', shape.0, b'K', shape.1, 0x86]);
    out.extend_from_slice(&[b'K', stride.0, b'K', stride.1, 0x86]);
    out.push(0x89);
    global(out, "collections", "OrderedDict");
    out.extend_from_slice(b")R");
    out.push(b't');
    out.push(b'R');
}

/// `{"state_dict": OrderedDict(module.a.weight: bf16 (2, 3), b: f32 (2, 2) transposed view,
/// step: 5)}`, as `torch.save` lays it out in a zip.
pub(crate) fn checkpoint() -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}'];
    s(&mut p, "state_dict");
    global(&mut p, "collections", "OrderedDict");
    p.extend_from_slice(b")R(");
    s(&mut p, "module.a.weight");
    tensor(&mut p, "BFloat16Storage", "0", 6, (2, 3), (3, 1));
    s(&mut p, "b");
    tensor(&mut p, "FloatStorage", "1", 4, (2, 2), (1, 2));
    s(&mut p, "step");
    p.extend_from_slice(&[b'K', 5]);
    p.extend_from_slice(b"us.");
    let bf16: Vec<u8> = [1.0f32, -2.0, 0.5, 3.0, 4.0, -0.25]
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let f32s: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    zip_of(&[
        ("archive/data.pkl", &p),
        ("archive/data/0", &bf16),
        ("archive/data/1", &f32s),
        ("archive/version", b"3\n"),
    ])
}

pub(crate) fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in files {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn a_checkpoint_round_trips_keeping_bf16() {
    let ck = torch::read_checkpoint(&checkpoint()).unwrap();
    assert_eq!(ck.skipped, vec!["step".to_string()]);
    let a = &ck.tensors["a.weight"];
    assert_eq!((a.dtype, a.shape.clone()), (StorageType::BF16, vec![2, 3]));
    let bytes = safetensors::write(&ck.tensors).unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("a.weight").unwrap().dtype(),
        ::safetensors::Dtype::BF16
    );
    let f = TensorFile::parse(&bytes).unwrap();
    assert_eq!(
        f.get("a.weight").unwrap().as_f32(),
        &[1.0, -2.0, 0.5, 3.0, 4.0, -0.25]
    );
    // The transposed view is materialised in its logical order.
    assert_eq!(f.get("b").unwrap().as_f32(), &[1.0, 3.0, 2.0, 4.0]);
}

#[test]
fn ptdit_convert_writes_safetensors() {
    let dir = std::env::temp_dir().join(format!("ptdit-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, out) = (dir.join("model.pt"), dir.join("model.safetensors"));
    std::fs::write(&inp, checkpoint()).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ptdit"))
        .arg("convert")
        .arg(&inp)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(TensorFile::read(&out).unwrap().tensors.len(), 2);
}

#[test]
fn any_other_global_is_refused() {
    for (module, name) in [("os", "system"), ("builtins", "eval"), ("torch", "load")] {
        let mut p = vec![0x80, 2];
        global(&mut p, module, name);
        s(&mut p, "echo hi");
        p.extend_from_slice(&[0x85, b'R', b'.']);
        let e = torch::read_checkpoint(&zip_of(&[("archive/data.pkl", &p)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("`{module}.{name}`")) && e.contains("refusing"),
            "{e}"
        );
    }
    // STACK_GLOBAL (protocol 4) is checked too.
    let mut p = vec![0x80, 4];
    p.extend_from_slice(&[0x8c, 2]);
    p.extend_from_slice(b"os");
    p.extend_from_slice(&[0x8c, 6]);
    p.extend_from_slice(b"system");
    p.extend_from_slice(&[0x93, b'.']);
    let e = torch::read_checkpoint(&zip_of(&[("archive/data.pkl", &p)]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`os.system`"), "{e}");
}

#[test]
fn truncated_and_non_zip_files_are_errors() {
    let ck = checkpoint();
    assert!(torch::read_checkpoint(&ck[..ck.len() / 2]).is_err());
    let e = torch::read_checkpoint(b"not a zip")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a PyTorch zip checkpoint"), "{e}");
    let mut p = vec![0x80, 2, b'}'];
    s(&mut p, "x");
    let e = torch::read_checkpoint(&zip_of(&[("archive/data.pkl", &p)]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
}

/// A checkpoint whose top-level dict maps each of `wrappers` to a state dict
/// `{keys[i]: f32 (2,) tensor on storage i}` (no wrapper: the state dict is the top level).
pub(crate) fn wrapped(wrappers: &[&str], keys: &[&str], byteorder: Option<&[u8]>) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    let state_dict = |p: &mut Vec<u8>| {
        global(p, "collections", "OrderedDict");
        p.extend_from_slice(b")R(");
        for (i, k) in keys.iter().enumerate() {
            s(p, k);
            tensor(p, "FloatStorage", &i.to_string(), 2, (1, 2), (2, 1));
        }
        p.push(b'u');
    };
    match wrappers {
        [] => state_dict(&mut p),
        ws => {
            p.extend_from_slice(b"}(");
            for w in ws {
                s(&mut p, w);
                state_dict(&mut p);
            }
            p.push(b'u');
        }
    }
    p.push(b'.');
    let data: Vec<Vec<u8>> = (0..keys.len())
        .map(|i| {
            [i as f32, -1.5]
                .iter()
                .flat_map(|v| match byteorder {
                    Some(b"big") => v.to_be_bytes(),
                    _ => v.to_le_bytes(),
                })
                .collect()
        })
        .collect();
    let names: Vec<String> = (0..keys.len())
        .map(|i| format!("archive/data/{i}"))
        .collect();
    let mut files: Vec<(&str, &[u8])> = vec![("archive/data.pkl", &p)];
    files.extend(
        names
            .iter()
            .zip(&data)
            .map(|(n, d)| (n.as_str(), d.as_slice())),
    );
    if let Some(b) = byteorder {
        files.push(("archive/byteorder", b));
    }
    zip_of(&files)
}

fn err(bytes: &[u8]) -> String {
    torch::read_checkpoint(bytes).unwrap_err().to_string()
}

#[test]
fn the_state_dict_is_found_under_any_one_wrapper_and_chosen_among_several() {
    for w in ["model_state_dict", "ema", "model", "state_dict"] {
        let ck = torch::read_checkpoint(&wrapped(&[w], &["x.weight"], None)).unwrap();
        assert_eq!((ck.from.as_deref(), ck.tensors.len()), (Some(w), 1), "{w}");
    }
    let both = wrapped(&["ema", "model_state_dict"], &["x.weight"], None);
    let e = err(&both);
    assert!(
        e.contains("several state dicts (ema, model_state_dict): choose one with --key"),
        "{e}"
    );
    let ck = torch::read_checkpoint_at(&both, Some("ema")).unwrap();
    assert_eq!(ck.from.as_deref(), Some("ema"));
    let e = torch::read_checkpoint_at(&both, Some("emma"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no dict `emma`") && e.contains("ema, model_state_dict"),
        "{e}"
    );
    // The `OrderedDict([(k, v), ...])` form keeps its items (it came out empty).
    let mut p = vec![0x80, 2];
    global(&mut p, "collections", "OrderedDict");
    p.extend_from_slice(b"(");
    s(&mut p, "w");
    tensor(&mut p, "FloatStorage", "0", 2, (1, 2), (2, 1));
    p.extend_from_slice(&[0x86, b'l', 0x85, b'R', b'.']);
    let f32s: Vec<u8> = [1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let ck = torch::read_checkpoint(&zip_of(&[
        ("archive/data.pkl", &p),
        ("archive/data/0", &f32s),
    ]))
    .unwrap();
    assert_eq!(ck.tensors.len(), 1);
}

#[test]
fn a_checkpoint_that_would_convert_wrongly_is_refused_or_read_right() {
    // Big-endian storages are swapped, not read as little-endian.
    let ck = torch::read_checkpoint(&wrapped(&[], &["w"], Some(b"big"))).unwrap();
    let le: Vec<u8> = [0f32, -1.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(ck.tensors["w"].data, le);
    let e = err(&wrapped(&[], &["w"], Some(b"middle")));
    assert!(e.contains("byteorder `middle`"), "{e}");
    // `w` and `module.w` would both be `w`: one silently won.
    let e = err(&wrapped(&[], &["w", "module.w"], None));
    assert!(e.contains("`w` and `module.w` are both `w`"), "{e}");
    // A dict without tensors converted to "0 tensors" with exit status 0.
    let mut p = vec![0x80, 2, b'}'];
    s(&mut p, "step");
    p.extend_from_slice(&[b'K', 5, b's', b'.']);
    let e = err(&zip_of(&[("archive/data.pkl", &p)]));
    assert!(
        e.contains("no tensors in the state dict (1 other entries)"),
        "{e}"
    );
}

/// A pickle around `body`, in a zip with one 8-byte storage.
fn pickle_zip(body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend_from_slice(body);
    p.push(b'.');
    zip_of(&[("archive/data.pkl", &p), ("archive/data/0", &[0u8; 8])])
}

#[test]
fn hostile_pickles_end_in_bounded_time_and_memory() {
    let start = std::time::Instant::now();
    // Nested 100,000 deep: lists, tuples and dicts (the stack overflowed, aborting).
    let mut lists = vec![b']'; 100_000];
    lists.extend(vec![b'a'; 99_999]);
    let mut marks = vec![b'('; 100_000];
    marks.extend(vec![b't'; 100_000]);
    let mut tuples = vec![b'N'];
    tuples.extend(vec![0x85; 100_000]);
    for body in [lists, marks, tuples] {
        let e = err(&pickle_zip(&body));
        assert!(e.contains("nested deeper than 64"), "{e}");
    }
    // "Billion laughs": each list holds the previous one twice, by memo reference.
    let mut laughs = vec![b']', b'q', 0];
    for i in 1..40u8 {
        laughs.extend_from_slice(&[b'(', b'h', i - 1, b'h', i - 1, b'l', b'q', i]);
    }
    let e = err(&pickle_zip(&laughs));
    assert!(e.contains("expands to more than"), "{e}");
    // OrderedDict called again and again on one long list of pairs: quadratic work.
    let mut calls = vec![b'('];
    for _ in 0..20_000 {
        calls.extend_from_slice(&[b'N', b'N', 0x86]);
    }
    calls.extend_from_slice(&[b'l', b'q', 0]);
    for _ in 0..20_000 {
        calls.extend_from_slice(b"ccollections\nOrderedDict\n");
        calls.extend_from_slice(&[b'h', 0, 0x85, b'R', b'0']);
    }
    let e = err(&pickle_zip(&calls));
    assert!(e.contains("copy more than"), "{e}");
    // Sizes near 2^62 overflowed; a declared (65536, 65536) view of 8 bytes allocated 16 GiB.
    for (shape, stride) in [
        ([0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x40], [b'K', 1]),
        ([0x8a, 8, 0, 0, 1, 0, 0, 0, 0, 0], [b'K', 0]),
    ] {
        let mut body = Vec::new();
        body.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        s(&mut body, "storage");
        global(&mut body, "torch", "FloatStorage");
        s(&mut body, "0");
        s(&mut body, "cpu");
        body.extend_from_slice(&[b'K', 2, b't', b'Q', b'K', 0]);
        body.extend_from_slice(&shape);
        body.extend_from_slice(&[b'K', 4, 0x86]);
        body.extend_from_slice(&stride);
        body.extend_from_slice(&[b'K', 1, 0x86, b't', b'R']);
        let mut sd = vec![b'}'];
        s(&mut sd, "w");
        sd.extend_from_slice(&body);
        sd.push(b's');
        let e = err(&pickle_zip(&sd));
        assert!(e.contains("exceeds its storage"), "{e}");
    }
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

/// Keys are printed with their control characters escaped (a crafted key drove the terminal).
#[test]
fn printed_keys_cannot_drive_the_terminal() {
    let mut p = vec![0x80, 2, b'}', b'('];
    s(&mut p, "w");
    tensor(&mut p, "FloatStorage", "0", 2, (1, 2), (2, 1));
    s(&mut p, "\x1b[2J\x1b]0;pwned\x07step");
    p.extend_from_slice(&[b'K', 5, b'u', b'.']);
    let f32s: Vec<u8> = [1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let dir = std::env::temp_dir().join(format!("ptdit-convert-esc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, out) = (dir.join("esc.pt"), dir.join("esc.safetensors"));
    std::fs::write(
        &inp,
        zip_of(&[("archive/data.pkl", &p), ("archive/data/0", &f32s)]),
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ptdit"))
        .args(["convert".as_ref(), inp.as_os_str(), out.as_os_str()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(
        stdout.contains("\\u{1b}[2J\\u{1b}]0;pwned\\u{7}step"),
        "{stdout}"
    );
}

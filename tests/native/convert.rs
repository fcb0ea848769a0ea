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
fn checkpoint() -> Vec<u8> {
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

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
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

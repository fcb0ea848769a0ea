//! `ptdit quantize`: a model directory with its large Linear weights packed (bf16, q8, q4) per
//! component, which `generate`, the web demo and the embedding API load without a flag (the
//! component's `config.json` says how its weights are stored: `formats::quantized`).
//!
//! Which weights are packed is decided by the graph the engine builds for the component, the
//! same rule that reads them back (`nn::Linear::new`): the Linears whose rows hold whole
//! blocks. Norms, biases, embeddings, adaLN tables and convolutions keep their type, and the
//! VAE, tokenizer and scheduler are copied as they are. Files are converted one tensor at a
//! time: host memory is the largest tensor, not the file.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::model_dir::{TEXT_ENCODER, TRANSFORMER};
use crate::error::{Error, LoadError, Result};
use crate::formats::quantized::{self, Quantization};
use crate::formats::safetensors::{self, Dtype, OutEntry};
use crate::model::{t5, PtditConfig};
use crate::quant;
use crate::tensor::{DType, TensorDesc};

/// The packed format of each component's Linear weights (`None`: as they are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub transformer: Option<DType>,
    pub text_encoder: Option<DType>,
    /// Every other f32 tensor (norms, embeddings, tables, the VAE) written as bf16, the released
    /// checkpoints' own type: the download halves, the engine converts on load.
    pub rest_bf16: bool,
}

impl Plan {
    /// Named choices: `small` (q4 T5, q8 PT-DiT: the smallest that keeps q8's error where the
    /// image is made), `medium` (q8 T5, the transformer as it is), `bf16` (both bf16: the
    /// released weights' own precision, half of f32).
    pub fn preset(name: &str) -> Option<Plan> {
        Some(match name {
            "small" => Plan {
                transformer: Some(DType::Q8),
                text_encoder: Some(DType::Q4),
                rest_bf16: true,
            },
            "medium" => Plan {
                transformer: None,
                text_encoder: Some(DType::Q8),
                rest_bf16: true,
            },
            "bf16" => Plan {
                transformer: Some(DType::BF16),
                text_encoder: Some(DType::BF16),
                rest_bf16: true,
            },
            _ => return None,
        })
    }
}

/// What one component became.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub component: String,
    pub storage: Option<DType>,
    pub packed_tensors: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Writes `input` to `output` (a new or empty directory) with `plan` applied.
pub fn quantize_dir(input: &Path, output: &Path, plan: Plan) -> Result<Vec<Written>> {
    if output.exists()
        && std::fs::read_dir(output)
            .map_err(|e| Error::io(output, e))?
            .next()
            .is_some()
    {
        return Err(Error::Input(format!(
            "{} is not empty: quantize writes a new model directory",
            output.display()
        )));
    }
    let mut done = Vec::new();
    for comp in super::model_dir::COMPONENTS {
        let from = input.join(comp);
        if !from.is_dir() {
            continue;
        }
        let to = output.join(comp);
        std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
        let storage = match comp {
            TRANSFORMER => plan.transformer,
            TEXT_ENCODER => plan.text_encoder,
            _ => None,
        };
        let named = |e: Error| e.under(from.display());
        done.push(component(comp, &from, &to, storage, plan.rest_bf16).map_err(named)?);
    }
    if done.is_empty() {
        return Err(Error::Input(format!(
            "{} holds no model components (transformer/, text_encoder/, …)",
            input.display()
        )));
    }
    Ok(done)
}

fn component(
    comp: &str,
    from: &Path,
    to: &Path,
    storage: Option<DType>,
    rest_bf16: bool,
) -> Result<Written> {
    let mut w = Written {
        component: comp.to_string(),
        storage,
        ..Written::default()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(|e| Error::io(from, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let packed = match storage {
        Some(s) => packed_params(comp, from, to, s)?,
        None => HashMap::new(),
    };
    for path in files {
        let name = path.file_name().unwrap_or_default();
        let dest = to.join(name);
        if name == "config.json" && storage.is_some() {
            continue; // written by packed_params
        }
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        w.bytes_in += size;
        if path.extension().is_some_and(|x| x == "safetensors") && (storage.is_some() || rest_bf16)
        {
            let (n, out) = convert_file(&path, &dest, &packed, storage, rest_bf16)?;
            w.packed_tensors += n;
            w.bytes_out += out;
        } else {
            std::fs::copy(&path, &dest).map_err(|e| Error::io(&path, e))?;
            w.bytes_out += size;
        }
    }
    Ok(w)
}

/// Writes the component's config with its `quantization` block and returns the params the
/// engine's graph of it stores packed, by key.
fn packed_params(
    comp: &str,
    from: &Path,
    to: &Path,
    storage: DType,
) -> Result<HashMap<String, TensorDesc>> {
    let path = from.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::load_in(path.display(), LoadError::Config(e.to_string())))?;
    let obj = json.as_object_mut().ok_or_else(|| {
        Error::load_in(
            path.display(),
            LoadError::Config("not a JSON object".into()),
        )
    })?;
    if obj.contains_key("quantization") {
        return Err(Error::Input(format!(
            "{}: this component is quantized already",
            path.display()
        )));
    }
    let block = serde_json::to_value(Quantization::new(storage))
        .map_err(|e| Error::Model(format!("quantization block: {e}")))?;
    obj.insert("quantization".into(), block);
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::Model(format!("config.json: {e}")))?;
    let wanted = match comp {
        TRANSFORMER => crate::model::ptdit::wanted(&PtditConfig::from_json(&text)?, DType::F32)?,
        _ => t5::wanted(&t5::T5Config::from_json(&text)?, DType::F32)?,
    };
    let dest = to.join("config.json");
    std::fs::write(&dest, text).map_err(|e| Error::io(&dest, e))?;
    Ok(wanted
        .device
        .into_iter()
        .filter(|(_, d)| d.dtype.is_packed())
        .collect())
}

/// Converts one safetensors file: the tensors in `packed` are packed, the rest copied. Returns
/// the packed tensors' count and the bytes written.
fn convert_file(
    path: &Path,
    dest: &Path,
    packed: &HashMap<String, TensorDesc>,
    storage: Option<DType>,
    rest_bf16: bool,
) -> Result<(usize, u64)> {
    let in_file = |e: Error| e.in_file(path.display());
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len);
    if n > safetensors::MAX_HEADER {
        let why = LoadError::BadFile {
            format: "safetensors",
            detail: format!("its header claims {n} bytes"),
        };
        return Err(Error::load_in(path.display(), why));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let (entries, _) = safetensors::parse_header(&header).map_err(in_file)?;
    let data_start = 8 + n;

    // The output's entries, in the input's data order.
    let mut out = Vec::new();
    let mut count = 0;
    for e in &entries {
        let key = e.key.strip_prefix("module.").unwrap_or(&e.key);
        match packed.get(key) {
            Some(d) => {
                if e.shape != d.shape.dims() {
                    return Err(in_file(Error::load(LoadError::Mismatch {
                        missing: Vec::new(),
                        unexpected: Vec::new(),
                        wrong: vec![format!(
                            "{}: expected {}, found {:?}",
                            e.key, d.shape, e.shape
                        )],
                    })));
                }
                count += 1;
                out.extend(quantized::file_entries(key, d.dtype, d.shape.dims()));
            }
            None => out.push(OutEntry {
                key: e.key.clone(),
                dtype: match (e.dtype, rest_bf16) {
                    (Dtype::F32, true) => Dtype::BF16,
                    (d, _) => d,
                },
                shape: e.shape.clone(),
            }),
        }
    }
    let mut metadata = BTreeMap::new();
    if let Some(s) = storage {
        let q = Quantization::new(s);
        metadata.insert("ptdit.format_version".into(), q.format_version.to_string());
        metadata.insert("ptdit.linear".into(), q.linear);
    }
    let file = std::fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e| Error::io(dest, e);
    let head = safetensors::header_bytes(&out, &metadata);
    w.write_all(&head).map_err(io)?;
    let mut written = head.len() as u64;
    for e in &entries {
        f.seek(SeekFrom::Start(data_start + e.start))
            .map_err(|err| Error::io(path, err))?;
        let mut bytes = vec![0u8; (e.end - e.start) as usize];
        f.read_exact(&mut bytes)
            .map_err(|err| Error::io(path, err))?;
        let key = e.key.strip_prefix("module.").unwrap_or(&e.key);
        let Some(d) = packed.get(key) else {
            if rest_bf16 && e.dtype == Dtype::F32 {
                bytes =
                    quant::bf16_bytes(&safetensors::decode(e.dtype, &bytes).unwrap_or_default());
            }
            w.write_all(&bytes).map_err(io)?;
            written += bytes.len() as u64;
            continue;
        };
        let values = safetensors::decode(e.dtype, &bytes).ok_or_else(|| {
            in_file(Error::load(LoadError::Dtype {
                key: e.key.clone(),
                dtype: format!("{:?}", e.dtype),
                expected: safetensors::READABLE,
            }))
        })?;
        let limit = quant::max_magnitude(d.dtype);
        if let Some(i) = values.iter().position(|v| v.is_nan() || v.abs() > limit) {
            return Err(in_file(Error::load(LoadError::Value {
                key: e.key.clone(),
                index: i,
                value: values[i],
                storage: d.dtype.name().to_string(),
            })));
        }
        let packed = quant::file_bytes(d.dtype, &values);
        w.write_all(&packed).map_err(io)?;
        written += packed.len() as u64;
    }
    w.flush().map_err(io)?;
    Ok((count, written))
}

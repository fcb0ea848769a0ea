//! One error type for the whole engine. Every variant names what went wrong and, where it
//! helps, what to do about it: the engine never panics on bad input.

/// Errors from the engine, the loader and the model code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No WebGPU adapter: no GPU driver and no software fallback.
    #[error(
        "no WebGPU adapter found ({0}). On a machine without a GPU, install Mesa's software \
         Vulkan driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`), which provides \
         the `llvmpipe` adapter; see the README"
    )]
    NoAdapter(String),

    /// The adapter refused to create a device.
    #[error("could not create a device on adapter `{adapter}`: {reason}")]
    Device { adapter: String, reason: String },

    /// The device was lost (driver reset, out of memory, or destroyed by its owner).
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),

    /// The GPU reported an error (validation or out-of-memory) while running our work.
    #[error("GPU error during {during}: {detail}")]
    Gpu { during: String, detail: String },

    /// A request needs more device memory than is left (checked before allocating).
    #[error(
        "not enough device memory for {what}: it needs {needed}, and {left} is left by \
         {by}; ask for a smaller size, fewer frames or a smaller storage type \
         (`ptdit quantize`)"
    )]
    OutOfMemory {
        what: String,
        needed: String,
        left: String,
        by: String,
    },

    /// A graph was built with shapes that do not fit the op.
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// The graph is used wrongly (unknown tensor, reading a non-output, wrong data length).
    #[error("graph: {0}")]
    Graph(String),

    /// Work that cannot be split to respect a device limit.
    #[error("{op}: {detail}")]
    Limit { op: &'static str, detail: String },

    /// A model's files were refused: `file` names the one at fault, where one is.
    #[error("{}{error}", file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Load {
        file: Option<String>,
        #[source]
        error: LoadError,
    },

    /// A model is used wrongly or built from values that do not fit it (a config the engine
    /// cannot run, a fixture without what a check needs).
    #[error("{0}")]
    Model(String),

    /// An input value is invalid (NaN, out of range, wrong size).
    #[error("invalid input: {0}")]
    Input(String),

    /// The caller cancelled the work (an aborted signal, a closed window).
    #[error("cancelled")]
    Cancelled,

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Names the work an [`Error::OutOfMemory`] was for (the executor knows only its graph);
    /// other errors pass unchanged.
    pub fn for_work(self, work: impl Into<String>) -> Self {
        match self {
            Error::OutOfMemory {
                needed, left, by, ..
            } => Error::OutOfMemory {
                what: work.into(),
                needed,
                left,
                by,
            },
            e => e,
        }
    }
}

/// Why a model's files (weights, configs, a tokenizer, a checkpoint) were refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is not in its format, or its format's structure is broken (a bad header,
    /// ranges that do not tile the data, a corrupt archive).
    #[error("not a valid {format} file: {detail}")]
    BadFile {
        format: &'static str,
        detail: String,
    },
    /// The file ends before its header says it does, or goes on after.
    #[error("truncated: {0}")]
    Truncated(String),
    /// A tensor is stored in a dtype the engine does not read, or not for this use.
    #[error("`{key}`: dtype {dtype}; expected {expected}")]
    Dtype {
        key: String,
        dtype: String,
        expected: &'static str,
    },
    /// A weight value its storage type cannot hold (NaN, an infinity, beyond f16's range).
    #[error("`{key}`: element {index} is {value}, which {storage} weights cannot hold")]
    Value {
        key: String,
        index: usize,
        value: f32,
        storage: String,
    },
    /// The weights do not match the model: every missing key, unexpected key and wrong
    /// shape or value, at once.
    #[error("{}", mismatch_text(missing, unexpected, wrong))]
    Mismatch {
        missing: Vec<String>,
        unexpected: Vec<String>,
        wrong: Vec<String>,
    },
    /// A directory lacks files the model needs.
    #[error("not a complete model directory; missing: {}{hint}", missing.join(", "))]
    MissingFiles { missing: Vec<String>, hint: String },
    /// A config that does not parse or describes a model the engine cannot build.
    #[error("{0}")]
    Config(String),
    /// A checkpoint's pickle asks for something a state dict never needs (refused, never run).
    #[error("checkpoint: {0}")]
    Refused(String),
}

impl LoadError {
    /// One missing key.
    pub(crate) fn missing(key: &str) -> Self {
        LoadError::Mismatch {
            missing: vec![key.to_string()],
            unexpected: Vec::new(),
            wrong: Vec::new(),
        }
    }
}

/// A config that does not parse or describes a model the engine cannot build.
pub(crate) fn config_error(why: String) -> Error {
    Error::load(LoadError::Config(why))
}

fn mismatch_text(missing: &[String], unexpected: &[String], wrong: &[String]) -> String {
    let mut msg = String::from("the weights do not match the model's config.json:");
    for (title, items) in [
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("wrong shapes or values", wrong),
    ] {
        if !items.is_empty() {
            msg.push_str(&format!("\n  {title} ({}):", items.len()));
            for i in items {
                msg.push_str(&format!("\n    {i}"));
            }
        }
    }
    msg
}

impl Error {
    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    /// A load error not tied to one file.
    pub(crate) fn load(error: LoadError) -> Self {
        Error::Load { file: None, error }
    }

    /// A load error in `file`.
    pub(crate) fn load_in(file: impl std::fmt::Display, error: LoadError) -> Self {
        Error::Load {
            file: Some(file.to_string()),
            error,
        }
    }

    /// This error, naming `file` if it is a load error that names none yet (an outer name is
    /// kept: it is the more precise).
    pub fn in_file(self, file: impl std::fmt::Display) -> Self {
        match self {
            Error::Load { file: None, error } => Error::load_in(file, error),
            e => e,
        }
    }

    /// This error as seen from directory `dir`: a load error's file becomes `dir/file` (or
    /// `dir`), other model errors are prefixed with it.
    pub(crate) fn under(self, dir: impl std::fmt::Display) -> Self {
        match self {
            Error::Load { file, error } => Error::Load {
                file: Some(match file {
                    Some(f) => format!("{dir}/{f}"),
                    None => dir.to_string(),
                }),
                error,
            },
            Error::Model(m) => Error::Model(format!("{dir}: {m}")),
            e => e,
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

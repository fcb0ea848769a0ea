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

    /// A graph was built with shapes that do not fit the op.
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// The graph is used wrongly (unknown tensor, reading a non-output, wrong data length).
    #[error("graph: {0}")]
    Graph(String),

    /// Work that cannot be split to respect a device limit.
    #[error("{op}: {detail}")]
    Limit { op: &'static str, detail: String },

    /// A model, checkpoint or fixture is invalid (missing keys, bad config, corrupt file).
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
    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

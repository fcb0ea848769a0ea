//! The file formats the engine reads and writes, with no knowledge of any model: safetensors
//! (whole and streamed), PyTorch's zip checkpoints and the pickle inside them, and
//! SentencePiece's model protobuf, and how packed (bf16, q8, q4) Linear weights are stored. Each reader bounds what a corrupt file can make it allocate
//! and reports what is wrong with the file, not a panic.

pub mod pickle;
pub mod quantized;
pub mod safetensors;
pub mod sentencepiece;
pub mod torch;

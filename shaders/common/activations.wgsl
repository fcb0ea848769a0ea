// The activations the models use, shared by `unary` and the fused epilogue of the matmuls
// (`#include common/activations`).

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

// GELU, tanh approximation (PyTorch `approximate="tanh"`, T5's `gelu_new`). tanh is written
// with exp of a non-positive argument so large |v| cannot overflow.
fn gelu_tanh(v: f32) -> f32 {
    let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
    let e = exp(-2.0 * abs(u));
    let t = sign(u) * (1.0 - e) / (1.0 + e);
    return 0.5 * v * (1.0 + t);
}

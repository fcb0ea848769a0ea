//! Faults a long-lived host meets (issue #24): a cancelled generation leaves nothing behind, and
//! a device lost in the middle of one is an error, after which a new device works, and a request
//! too big for the memory left is an error, after which a smaller one works.

use ptdit::pipeline::generate::{Frame, Request, TextToImage};
use ptdit::pipeline::{default_model, model_dir};
use ptdit::{Error, GpuContext};

fn pipeline(ctx: &GpuContext) -> TextToImage {
    let c = model_dir::from_files(&default_model::files()).unwrap();
    TextToImage::new(ctx, c).unwrap()
}

/// The built-in model without its training declaration, which would refuse a 256² request
/// before its memory is counted.
fn undeclared_pipeline(ctx: &GpuContext) -> TextToImage {
    let c = model_dir::from_files(&crate::common::undeclared_default_model()).unwrap();
    TextToImage::new(ctx, c).unwrap()
}

fn request() -> Request {
    Request {
        prompt: "red apple".into(),
        width: 32,
        height: 32,
        steps: 4,
        seed: 11,
        ..Request::default()
    }
}

/// Generates, calling `at_step(i)` after each step (false cancels).
fn generate(
    pipe: &TextToImage,
    mut at_step: impl FnMut(usize) -> bool,
) -> ptdit::Result<Vec<Frame>> {
    pollster::block_on(pipe.generate(&request(), |i, _, _| at_step(i), false))
}

#[test]
fn a_request_too_big_for_the_memory_left_is_an_error_and_a_smaller_one_works() {
    // A device of its own: the budget is shared by every clone of a context.
    let ctx = GpuContext::new_blocking().unwrap();
    let pipe = undeclared_pipeline(&ctx);
    let held = ctx
        .buffer_bytes()
        .expect("wgpu counts buffer bytes natively");
    ctx.set_memory_budget(Some(held + (8 << 20)));
    let big = Request {
        width: 256,
        height: 256,
        ..request()
    };
    let e = pollster::block_on(pipe.generate(&big, |_, _, _| true, false)).unwrap_err();
    assert!(
        matches!(e, Error::OutOfMemory { .. }),
        "a 256² request under an 8 MiB budget gave: {e}"
    );
    assert_eq!(
        ctx.buffer_bytes(),
        Some(held),
        "the refused request allocated"
    );
    let after = generate(&pipe, |_| true).unwrap();
    let reference = generate(&pipeline(&crate::common::gpu()), |_| true).unwrap();
    assert_eq!(after, reference);
}

#[test]
fn a_cancelled_generation_leaves_nothing_behind() {
    let ctx = crate::common::gpu();
    let pipe = pipeline(&ctx);
    let e = generate(&pipe, |i| i < 2).unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    let after = generate(&pipe, |_| true).unwrap();
    let fresh = generate(&pipeline(&ctx), |_| true).unwrap();
    assert_eq!(
        after, fresh,
        "the generation after a cancelled one differs from a fresh one"
    );
}

#[test]
fn a_device_lost_mid_generation_is_an_error_and_a_new_device_works() {
    // A device of its own: the shared test device must live on.
    let ctx = GpuContext::new_blocking().unwrap();
    let pipe = pipeline(&ctx);
    let device = ctx.device.clone();
    let e = generate(&pipe, |i| {
        if i == 2 {
            device.destroy();
        }
        true
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("lost") || e.contains("destroyed"), "{e}");
    // The pipeline on the lost device keeps refusing, with the same cause, and never hangs.
    let again = generate(&pipe, |_| true).unwrap_err().to_string();
    assert!(
        again.contains("lost") || again.contains("destroyed"),
        "{again}"
    );
    let fresh_ctx = GpuContext::new_blocking().unwrap();
    let recovered = generate(&pipeline(&fresh_ctx), |_| true).unwrap();
    let reference = generate(&pipeline(&crate::common::gpu()), |_| true).unwrap();
    assert_eq!(recovered, reference);
}

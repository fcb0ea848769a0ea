//! The autotuner: it measures every matmul variant, GELU fused or not and every attention
//! variant, keeps the fastest in the context, caches the choice per adapter in a file, reuses it,
//! replaces a corrupt cache file, and takes its in-memory table from a host (the browser's way
//! of keeping it across page loads).

use crate::common::gpu;
use ptdit::autotune::{autotune, cache_key, memory_json, set_memory_json, Cache};
use ptdit::kernel::{AttentionKernel, MatmulKernel};

/// A device for one test alone (tests run in parallel and autotune sets the device's tuning).
fn own_gpu() -> ptdit::GpuContext {
    gpu(); // fails with the engine's message if there is no adapter
    ptdit::GpuContext::new_blocking().expect("a second device on the test adapter")
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ptdit-autotune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn measures_every_variant_then_reuses_the_cached_choice() {
    // Its own device: autotune sets the context's tuning, which the other test also does.
    let ctx = own_gpu();
    let dir = fresh_dir("reuse");
    let cache = Cache::Dir(dir.clone());

    let first = pollster::block_on(autotune(&ctx, &cache)).unwrap();
    assert!(!first.cached, "nothing was cached yet");
    let measured: Vec<MatmulKernel> = first.matmul_gflops.iter().map(|(k, _)| *k).collect();
    let f32_kernels: Vec<MatmulKernel> = MatmulKernel::ALL
        .into_iter()
        .filter(|k| k.takes_f32())
        .collect();
    assert_eq!(measured, f32_kernels, "every f32 variant is timed");
    assert!(first.matmul_gflops.iter().all(|(_, g)| *g > 0.0));
    let fastest = first
        .matmul_gflops
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| *k);
    assert_eq!(
        Some(first.tuning.matmul),
        fastest,
        "the fastest variant is kept"
    );
    assert_eq!(ctx.tuning(), first.tuning, "and set on the context");

    let text = std::fs::read_to_string(dir.join("autotune.json")).unwrap();
    let table: std::collections::HashMap<String, String> = serde_json::from_str(&text).unwrap();
    let gelu = if first.tuning.fuse_gelu {
        "fused"
    } else {
        "split"
    };
    let want = format!(
        "{}+{gelu}+{}{}",
        first.tuning.matmul.name(),
        first.tuning.attention.name(),
        if first.tuning.f16_math { "+f16" } else { "" },
    ) + if first.tuning.coop { "+coop" } else { "" };
    assert_eq!(table.get(&first.key), Some(&want));
    let (fused, split) = first.gelu_gflops.expect("GELU fusion is timed too");
    assert_eq!(
        first.tuning.fuse_gelu,
        fused > split,
        "and the faster way kept"
    );
    // f16 arithmetic is timed where it can run: shader-f16 and a kernel that has it.
    match first.f16_math_gflops {
        Some((half, single)) => {
            assert!(ctx.has_f16() && first.tuning.matmul.has_f16_math());
            assert_eq!(
                first.tuning.f16_math,
                half > single,
                "the faster math is kept"
            );
        }
        None => {
            assert!(
                !(ctx.has_f16() && first.tuning.matmul.has_f16_math()),
                "f16 math not timed"
            );
            assert!(!first.tuning.f16_math);
        }
    }
    // Cooperative matrices are timed, on f16 operands, where the device has them.
    match first.coop_gflops {
        Some((coop, other)) => {
            assert!(ctx.coop().is_some());
            assert_eq!(first.tuning.coop, coop > other, "the faster kernel is kept");
        }
        None => {
            assert!(ctx.coop().is_none(), "cooperative matrices not timed");
            assert!(!first.tuning.coop);
        }
    }
    match first.coop_attention_gflops {
        Some((coop, other)) => {
            assert!(ctx.coop().is_some());
            assert_eq!(
                first.tuning.coop_attention,
                coop > other,
                "the faster kernel is kept"
            );
        }
        None => {
            assert!(ctx.coop().is_none(), "coop attention not timed");
            assert!(!first.tuning.coop_attention);
        }
    }
    let attention: Vec<AttentionKernel> = first.attention_gflops.iter().map(|(k, _)| *k).collect();
    let for_f32: Vec<AttentionKernel> = AttentionKernel::ALL
        .into_iter()
        .filter(|k| k.takes_f32())
        .collect();
    assert_eq!(
        attention, for_f32,
        "every attention variant for f32 is timed"
    );
    let fastest = first
        .attention_gflops
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| *k);
    assert_eq!(
        Some(first.tuning.attention),
        fastest,
        "the fastest attention is kept"
    );
    assert!(
        first.key.contains(&ctx.report.name),
        "the key names the adapter"
    );

    let again = pollster::block_on(autotune(&ctx, &cache)).unwrap();
    assert!(again.cached, "the second call reads the cache");
    assert!(again.matmul_gflops.is_empty(), "and measures nothing");
    assert!(again.attention_gflops.is_empty());
    assert_eq!(again.tuning, first.tuning);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_cache_file_is_measured_again_and_replaced() {
    let ctx = own_gpu();
    let dir = fresh_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("autotune.json"), "{ not json").unwrap();
    let r = pollster::block_on(autotune(&ctx, &Cache::Dir(dir.clone()))).unwrap();
    assert!(!r.cached);
    let note = r.note.expect("the user is told about the unreadable file");
    assert!(note.contains("autotune.json"), "{note}");
    let text = std::fs::read_to_string(dir.join("autotune.json")).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
        "replaced: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_in_memory_table_is_taken_from_a_host_and_given_back() {
    // The only test of this binary that touches the in-memory table (the others use files).
    let ctx = own_gpu();
    let key = cache_key(&ctx);
    let table = serde_json::json!({ key.clone(): "registers+split+rows", "another adapter": "wide+fused+tiled+f16" });
    set_memory_json(&table.to_string()).unwrap();
    let r = pollster::block_on(autotune(&ctx, &Cache::Memory)).unwrap();
    assert!(r.cached, "the host's table is used: nothing is measured");
    assert!(r.matmul_gflops.is_empty() && r.attention_gflops.is_empty());
    assert_eq!(
        (r.tuning.matmul, r.tuning.fuse_gelu, r.tuning.attention),
        (MatmulKernel::Registers, false, AttentionKernel::Rows),
        "and its choice for this adapter is set"
    );
    assert_eq!(ctx.tuning(), r.tuning);
    let back: serde_json::Value = serde_json::from_str(&memory_json()).unwrap();
    assert_eq!(back, table, "the table goes back to the host unchanged");

    for bad in ["{ not json", "[1, 2]", r#"{"k": 3}"#] {
        let e = set_memory_json(bad).unwrap_err().to_string();
        assert!(e.contains("tuning cache"), "{bad}: {e}");
    }
    let back: serde_json::Value = serde_json::from_str(&memory_json()).unwrap();
    assert_eq!(back, table, "a refused table changes nothing");

    // A choice with f16 arithmetic comes back with it.
    let table = serde_json::json!({ key.clone(): "wide+fused+tiled+f16" });
    set_memory_json(&table.to_string()).unwrap();
    let r = pollster::block_on(autotune(&ctx, &Cache::Memory)).unwrap();
    assert!(r.cached);
    assert_eq!(
        (r.tuning.matmul, r.tuning.attention, r.tuning.f16_math),
        (MatmulKernel::Wide, AttentionKernel::Tiled, true)
    );
    // So do cooperative matrices for f16 graphs' products and attention, with f16 arithmetic
    // or without.
    for (text, f16_math, coop, coop_attention) in [
        ("wide+fused+tiled+coop", false, true, false),
        ("wide+fused+tiled+f16+coop", true, true, false),
        ("wide+fused+tiled+coop-attention", false, false, true),
        ("wide+fused+tiled+f16+coop+coop-attention", true, true, true),
    ] {
        let table = serde_json::json!({ key.clone(): text });
        set_memory_json(&table.to_string()).unwrap();
        let r = pollster::block_on(autotune(&ctx, &Cache::Memory)).unwrap();
        assert!(r.cached, "{text}");
        assert_eq!(
            (r.tuning.f16_math, r.tuning.coop, r.tuning.coop_attention),
            (f16_math, coop, coop_attention),
            "{text}"
        );
    }
    // Another order or an unknown token is not misread (such an entry is measured again).
    for text in [
        "wide+fused+tiled+coop+f16",
        "wide+fused+tiled+coop+coop",
        "wide+fused+tiled+coop-attention+coop",
        "wide+fused+tiled+tc",
    ] {
        assert_eq!(ptdit::autotune::parse_tuning(text), None, "{text}");
    }
}

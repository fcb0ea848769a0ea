//! The graph executor and planner: memory sharing, errors at build time and at the API, device
//! limits, borrowed devices.
// Native only: these drive the GPU synchronously (pollster) or use files and processes.

use crate::common::{check, feeds, gpu, rand, F32_TOL};
use ptdit::graph::{planner, ExecOptions, Source};
use ptdit::rng::Rng;
use ptdit::wgpu;
use ptdit::{Executable, GpuContext, Graph, HostTensor, TensorDesc};

/// A chain with branches: x → many elementwise ops, each reading one or two earlier results.
fn random_dag(seed: u64, n: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([3, 50])).unwrap();
    let mut live = vec![x];
    let mut r = Rng::new(seed);
    for _ in 0..n {
        let a = live[(r.next_u64() as usize) % live.len()];
        let b = live[(r.next_u64() as usize) % live.len()];
        let t = match r.next_u64() % 3 {
            0 => g.add(a, b),
            1 => g.mul(a, b),
            _ => g.silu(a),
        }
        .unwrap();
        live.push(t);
        if live.len() > 4 {
            live.remove((r.next_u64() as usize) % live.len());
        }
    }
    let last = *live.last().unwrap();
    g.output(last, "y").unwrap();
    g
}

#[test]
fn planner_never_shares_memory_between_live_tensors() {
    for seed in 0..20 {
        let g = random_dag(seed, 40);
        let plan = planner::plan(&g);
        // Lifetime of each planned tensor: [producer, last reader].
        let mut span = vec![(usize::MAX, 0usize); g.tensors().count()];
        for (i, node) in g.nodes().iter().enumerate() {
            let o = node.output.index();
            span[o] = (i, span[o].1.max(i));
            for t in &node.inputs {
                span[t.index()].1 = i;
            }
        }
        let planned: Vec<usize> = (0..span.len())
            .filter(|i| plan.slab_of[*i].is_some())
            .collect();
        for &a in &planned {
            for &b in &planned {
                if a < b && plan.slab_of[a] == plan.slab_of[b] {
                    let (sa, sb) = (span[a], span[b]);
                    let overlap = sa.0 <= sb.1 && sb.0 <= sa.1;
                    assert!(
                        !overlap,
                        "seed {seed}: tensors {a} {sa:?} and {b} {sb:?} share slab {:?}",
                        plan.slab_of[a]
                    );
                }
            }
        }
        assert!(
            plan.intermediate_bytes < plan.unshared_bytes,
            "sharing saved nothing"
        );
    }
}

#[test]
fn shared_memory_gives_the_same_results() {
    let g = random_dag(3, 30);
    let f = feeds(vec![("x", rand(&[3, 50], 1, 1.0))]);
    pollster::block_on(check(&g, &f, F32_TOL, &ExecOptions::default()));
}

#[test]
fn shape_errors_name_the_op_and_the_shapes() {
    let mut g = Graph::new();
    let a = g.input("a", TensorDesc::f32([3, 5])).unwrap();
    let w = g.param("w", [4, 6]).unwrap();
    let e = g.matmul(a, w, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "matmul: a (3, 5) and weight (4, 6): inner dimensions differ (5 vs 6)"
    );
    let b = g.input("b", TensorDesc::f32([7])).unwrap();
    let e = g.add(a, b).unwrap_err().to_string();
    assert!(
        e.starts_with("add: (7,) cannot be broadcast over (3, 5)"),
        "{e}"
    );
    let e = g.input("a", TensorDesc::f32([1])).unwrap_err().to_string();
    assert!(e.contains("two tensors are named `a`"), "{e}");
    let e = g.reshape(a, [4, 4]).unwrap_err().to_string();
    assert!(e.contains("(3, 5) cannot be viewed as (4, 4)"), "{e}");
}

#[test]
fn api_misuse_is_reported() {
    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([2, 3])).unwrap();
    let y = g.silu(x).unwrap();
    let z = g.silu(y).unwrap();
    g.output(z, "z").unwrap();
    let exe = Executable::new_blocking(&gpu(), &g).unwrap();
    let e = exe
        .write("x", &HostTensor::zeros([3, 2]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`x` expects F32 (2, 3) but got F32 (3, 2)"),
        "{e}"
    );
    let e = exe
        .write(
            "x",
            &HostTensor::f32([2, 3], vec![0.0, 1.0, f32::NAN, 0.0, 0.0, 0.0]),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite value (NaN) at element 2"), "{e}");
    let e = exe
        .write("nope", &HostTensor::zeros([1]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no tensor named `nope`"), "{e}");
    let inner = g.info(y).name.clone();
    let e = exe.read_blocking(&inner).unwrap_err().to_string();
    assert!(e.contains("memory is reused"), "{e}");
    exe.write(
        "x",
        &HostTensor::f32([2, 3], vec![0.0, 1.0, -1.0, 2.0, -2.0, 3.0]),
    )
    .unwrap();
    exe.run().unwrap();
    let z = exe.read_blocking("z").unwrap();
    let silu = |v: f32| v / (1.0 + (-v).exp());
    assert!((z.as_f32()[1] - silu(silu(1.0))).abs() < 1e-6);
}

#[test]
fn a_buffer_larger_than_the_device_allows_is_an_error_not_a_crash() {
    let ctx = gpu();
    let max = ctx.device.limits().max_buffer_size;
    let n = (max / 4 + 1024) as usize;
    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([n])).unwrap();
    let y = g.silu(x).unwrap();
    g.output(y, "y").unwrap();
    let e = match Executable::new_blocking(&ctx, &g) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a graph larger than the device was compiled"),
    };
    assert!(e.contains("this device allows at most"), "{e}");
}

#[test]
fn a_borrowed_device_runs_graphs_and_stays_usable() {
    let own = gpu();
    let host = GpuContext::borrowed(own.device.clone(), own.queue.clone(), None);
    assert_eq!(host.ownership, ptdit::gpu::Ownership::Borrowed);
    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([4])).unwrap();
    let y = g.mul(x, x).unwrap();
    g.output(y, "y").unwrap();
    let exe = Executable::new_blocking(&host, &g).unwrap();
    exe.write("x", &HostTensor::f32([4], vec![1.0, 2.0, 3.0, 4.0]))
        .unwrap();
    exe.run().unwrap();
    assert_eq!(
        exe.read_blocking("y").unwrap().as_f32(),
        &[1.0, 4.0, 9.0, 16.0]
    );
    drop(exe);
    // The host's device is still alive and usable after the engine is gone.
    let buf = host.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    host.queue.write_buffer(&buf, 0, &[0u8; 16]);
    host.device
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
}

#[test]
fn memory_report_of_a_graph_needs_no_device() {
    let g = random_dag(5, 10);
    let plan = planner::plan(&g);
    let fixed: u64 = g
        .tensors()
        .filter(|(_, t)| matches!(t.source, Source::Input))
        .map(|(_, t)| planner::align(t.desc.bytes()))
        .sum();
    assert_eq!(plan.fixed_bytes, fixed);
    assert_eq!(
        plan.peak_bytes(),
        plan.fixed_bytes + plan.output_bytes + plan.intermediate_bytes
    );
}

#[test]
fn a_lost_device_is_reported_not_hung_on() {
    // Its own device: destroying the shared one would break the other tests.
    let ctx = GpuContext::new_blocking().unwrap();
    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([4])).unwrap();
    let y = g.silu(x).unwrap();
    g.output(y, "y").unwrap();
    let exe = Executable::new_blocking(&ctx, &g).unwrap();
    ctx.device.destroy();
    let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
    let run = exe.run().and_then(|_| exe.read_blocking("y").map(|_| ()));
    let e = run
        .expect_err("work on a destroyed device must fail")
        .to_string();
    assert!(e.contains("the GPU device was lost"), "{e}");
}

/// What the planner says a graph takes is what the device allocates for it, counted by wgpu on
/// a device of the test's own (other tests allocate on the shared one): the released PT-DiT
/// block structure at width 128, q8 Linears, in f32, whose weights, text, latents and shared
/// intermediates are all in the plan. The executor adds its uniform arena (a few KiB) and the
/// device rounds each buffer up to its alignment, so the count may exceed the plan by a
/// little, never fall short: 2 % + 1 MiB.
#[test]
fn the_planner_predicts_the_devices_buffer_memory() {
    use ptdit::model::ptdit as net;
    let ctx = GpuContext::new_blocking().unwrap();
    let mut cfg = crate::common::small_xl(2, 64, 2, 64);
    cfg.quantization = Some(ptdit::formats::quantized::Quantization::new(
        ptdit::DType::Q8,
    ));
    let shapes = net::Shapes {
        batch: 2,
        grid: cfg.grid(1, 32, 32).unwrap(),
        text_len: 16,
        traces: false,
    };
    let g = net::build(&cfg, &shapes).unwrap();
    let plan = planner::plan(&g);
    let before = ctx.buffer_bytes().unwrap_or(0);
    let exe = Executable::new_blocking(&ctx, &g).unwrap();
    let used = ctx
        .buffer_bytes()
        .expect("wgpu counts this backend's buffer memory")
        - before;
    let want = plan.peak_bytes();
    println!("planned {want} bytes, allocated {used}");
    assert!(used >= want, "allocated {used} < planned {want}");
    assert!(
        used as f64 <= want as f64 * 1.02 + (1 << 20) as f64,
        "allocated {used} > planned {want}"
    );
    drop(exe);
}

/// x → `other = x + x`, then a skippable region (`silu(x) · x + x`, several dispatches under a
/// small binding limit) whose result is replaced by `other` when the flag is set; `y` reads the
/// select and `z` an op after it.
fn skippable_graph() -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([9, 70])).unwrap();
    let flag = g.input("flag", TensorDesc::f32([2])).unwrap();
    let other = g.add(x, x).unwrap();
    let start = g.nodes().len();
    let a = g.silu(x).unwrap();
    let b = g.mul(a, x).unwrap();
    let c = g.add(b, x).unwrap();
    let y = g.skippable(start, flag, &[(c, other)]).unwrap()[0];
    let z = g.mul(y, x).unwrap();
    g.output(y, "y").unwrap();
    g.output(z, "z").unwrap();
    g
}

#[test]
fn a_skipped_region_gives_its_replacement_and_a_run_one_its_result() {
    let g = skippable_graph();
    let x = rand(&[9, 70], 3, 1.0);
    for (flag, limit) in [
        (0.0, None),
        (1.0, None),
        (0.0, Some(1024)),
        (1.0, Some(1024)),
    ] {
        let f = feeds(vec![
            ("x", x.clone()),
            ("flag", HostTensor::f32([2], vec![flag, 0.0])),
        ]);
        let opts = ExecOptions {
            max_binding_bytes: limit,
            ..Default::default()
        };
        let got = pollster::block_on(check(&g, &f, F32_TOL, &opts)).got;
        let want: Vec<f32> = x
            .as_f32()
            .iter()
            .map(|v| match flag != 0.0 {
                true => 2.0 * v,
                false => v / (1.0 + (-v).exp()) * v + v,
            })
            .collect();
        let y = got["y"].as_f32();
        let worst = y
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "flag {flag}, limit {limit:?}: off by {worst}");
    }
}

#[test]
fn the_same_executable_skips_or_runs_as_the_device_flag_says() {
    let ctx = gpu();
    let g = skippable_graph();
    let exe = Executable::new_blocking(&ctx, &g).unwrap();
    let x = rand(&[9, 70], 4, 1.0);
    exe.write("x", &x).unwrap();
    let mut seen = Vec::new();
    for flag in [0.0, 1.0, 0.0, 1.0] {
        exe.write("flag", &HostTensor::f32([2], vec![flag, 0.0]))
            .unwrap();
        exe.run().unwrap();
        seen.push(exe.read_blocking("y").unwrap().as_f32()[5]);
    }
    let v = x.as_f32()[5];
    assert_eq!(seen[0], seen[2], "running twice gave different results");
    assert!(
        (seen[1] - 2.0 * v).abs() < 1e-6 && seen[3] == seen[1],
        "{seen:?}"
    );
    assert_ne!(seen[0], seen[1]);
}

#[test]
fn what_a_skippable_region_computes_is_read_only_through_its_selects() {
    let ctx = gpu();
    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([4, 8])).unwrap();
    let flag = g.input("flag", TensorDesc::f32([1])).unwrap();
    let start = g.nodes().len();
    let a = g.silu(x).unwrap();
    let _ = g.skippable(start, flag, &[(a, x)]).unwrap();
    let leak = g.add(a, x).unwrap();
    g.output(leak, "leak").unwrap();
    let err = Executable::new_blocking(&ctx, &g)
        .err()
        .expect("a leak compiled");
    assert!(err.to_string().contains("skippable region"), "{err}");

    let mut g = Graph::new();
    let x = g.input("x", TensorDesc::f32([4, 8])).unwrap();
    let start = g.nodes().len();
    let flag = g.input("flag", TensorDesc::f32([1])).unwrap();
    let err = g
        .skippable(start, flag, &[(x, x)])
        .expect_err("an empty region was made");
    assert!(err.to_string().contains("skippable region"), "{err}");
}

/// Projections are fused only where each part's values fill whole 4-byte words of the stacked
/// buffer (it is written part by part): an f16 bias of 15 values (30 bytes) keeps them apart,
/// the same in f32 or at width 16 stacks them.
#[test]
fn projections_that_cannot_stack_stay_apart() {
    use ptdit::nn::attention::{Fuse, ProjectionKeys, Projections};
    use ptdit::nn::Attention;
    use ptdit::DType;
    for (float, dim, heads, stacked) in [
        (DType::F16, 15, 3, false),
        (DType::F32, 15, 3, true),
        (DType::F16, 16, 4, true),
    ] {
        for fuse in [Fuse::Qkv, Fuse::Kv] {
            let mut g = Graph::with_float(float);
            let keys = ProjectionKeys::DIFFUSERS;
            let a = Attention::new(&mut g, "attn", keys, dim, heads, true, fuse).unwrap();
            let fused = !matches!(a.proj, Projections::Separate { .. });
            assert_eq!(fused, stacked, "{float:?}, width {dim}, {fuse:?}");
            let names: Vec<String> = g.tensors().map(|(_, t)| t.name.clone()).collect();
            assert_eq!(names.iter().any(|n| n.contains('+')), stacked, "{names:?}");
        }
    }
}

/// A stacked param's parts must share their trailing dimensions and not be params already.
#[test]
fn stacked_params_refuse_parts_that_do_not_stack() {
    use ptdit::tensor::Shape;
    use ptdit::DType;
    let part = |k: &str, dims: &[usize]| (k.to_string(), Shape(dims.to_vec()));
    let mut g = Graph::new();
    let e = g
        .param_stacked("a+b", &[part("a", &[4, 8]), part("b", &[4, 6])], DType::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`b`") && e.contains("does not stack"), "{e}");
    g.param("c", [4, 8]).unwrap();
    let e = g
        .param_stacked("a+c", &[part("a", &[4, 8]), part("c", &[4, 8])], DType::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`c` is already a param"), "{e}");
    let t = g
        .param_stacked("a+b", &[part("a", &[4, 8]), part("b", &[2, 8])], DType::F32)
        .unwrap();
    assert_eq!(g.shape(t).dims(), &[6, 8]);
    let parts: Vec<(String, usize)> = (g.checkpoint_tensors().into_iter())
        .filter(|p| p.param == t)
        .map(|p| (p.key, p.offset))
        .collect();
    assert_eq!(parts, [("a".to_string(), 0), ("b".to_string(), 32)]);
}

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

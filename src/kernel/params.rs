//! Parameter blocks, declared once: [`param_block!`](crate::param_block) turns one Rust
//! declaration into the `#[repr(C)]` struct an op fills and the executor's uniform arena
//! writes, and into the WGSL struct its kernel is compiled with ([`Kernel::wgsl`] puts the
//! declarations before the shader's text, the top block also as `Params`). The layouts agree
//! by construction: every field is a 4-byte scalar, an `array<vec4<u32>, N>` or a nested
//! block, the macro checks at compile time that each sits at the offset WGSL's uniform layout
//! gives it, and `Pod` rules out hidden padding.
//!
//! [`Kernel::wgsl`]: super::Kernel::wgsl

/// A uniform parameter block of a kernel (see the module's documentation).
pub trait ParamBlock: bytemuck::Pod {
    /// The WGSL declarations the kernel needs: the nested blocks' structs, then this one's.
    const DECLS: &'static [&'static str];
    /// This block's own WGSL struct.
    const WGSL: &'static str;
    /// The WGSL name of the struct.
    const NAME: &'static str;

    /// The block as the 32-bit words the uniform arena stores.
    fn words(&self) -> Vec<u32> {
        bytemuck::cast_slice(bytemuck::bytes_of(self)).to_vec()
    }
}

/// The WGSL type of a field type of a parameter block.
#[doc(hidden)]
#[macro_export]
macro_rules! __wgsl_type {
    (u32) => {
        "u32"
    };
    (f32) => {
        "f32"
    };
    ([[u32; 4]; $n:literal]) => {
        concat!("array<vec4<u32>, ", stringify!($n), ">")
    };
    ($block:ident) => {
        stringify!($block)
    };
}

/// The alignment WGSL's uniform address space gives a field type: scalars 4, arrays of
/// vectors and nested structs 16.
#[doc(hidden)]
#[macro_export]
macro_rules! __wgsl_align {
    (u32) => {
        4
    };
    (f32) => {
        4
    };
    ([[u32; 4]; $n:literal]) => {
        16
    };
    ($block:ident) => {
        16
    };
}

/// Declares a kernel's parameter block once, for Rust and WGSL:
///
/// ```ignore
/// param_block! {
///     /// Softmax over rows.
///     pub struct SoftmaxParams {
///         rows: u32,
///         d: u32,
///     }
/// }
/// ```
///
/// Field types are `u32`, `f32`, `[[u32; 4]; N]` (WGSL `array<vec4<u32>, N>`) or another
/// block, which is then listed after `uses` (`pub struct GateParams uses AdaParams { .. }`) so
/// that its WGSL struct is declared first. A nested block must sit at a 16-byte offset and be
/// a multiple of 16 bytes long (checked at compile time).
#[macro_export]
macro_rules! param_block {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(uses $($dep:ident),+)? {
            $( $(#[$fmeta:meta])* $field:ident : $ty:tt ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::kernel::ParamBlock for $name {
            const DECLS: &'static [&'static str] = &[
                $($(<$dep as $crate::kernel::ParamBlock>::WGSL,)+)?
                <$name as $crate::kernel::ParamBlock>::WGSL,
            ];
            const WGSL: &'static str = concat!(
                "struct ", stringify!($name), " {\n",
                $( "    ", stringify!($field), ": ", $crate::__wgsl_type!($ty), ",\n", )*
                "}\n"
            );
            const NAME: &'static str = stringify!($name);
        }

        const _: () = {
            $(
                assert!(
                    ::core::mem::offset_of!($name, $field) % $crate::__wgsl_align!($ty) == 0,
                    concat!(
                        stringify!($name), ".", stringify!($field),
                        " is not at the offset WGSL's uniform layout gives it"
                    )
                );
            )*
            $($(
                assert!(
                    ::core::mem::size_of::<$dep>() % 16 == 0,
                    concat!(stringify!($dep), " is nested, so its size must be a multiple of 16")
                );
            )+)?
        };
    };
}

#[cfg(test)]
mod tests {
    use super::ParamBlock;

    crate::param_block! {
        struct Inner {
            a: u32,
            b: u32,
            c: f32,
            d: u32,
        }
    }

    crate::param_block! {
        struct Outer uses Inner {
            n: u32,
            pad0: u32,
            pad1: u32,
            pad2: u32,
            inner: Inner,
            dims: [[u32; 4]; 2],
            scale: f32,
        }
    }

    #[test]
    fn one_declaration_gives_the_rust_words_and_the_wgsl_struct() {
        let p = Outer {
            n: 3,
            inner: Inner {
                a: 1,
                c: 0.5,
                ..Default::default()
            },
            dims: [[7, 0, 0, 0], [0, 0, 0, 9]],
            scale: 2.0,
            ..Default::default()
        };
        let w = p.words();
        assert_eq!(w.len(), 4 + 4 + 8 + 1);
        assert_eq!(
            (w[0], w[4], w[6], w[8], w[15]),
            (3, 1, 0.5f32.to_bits(), 7, 9)
        );
        assert_eq!(w[16], 2.0f32.to_bits());
        assert_eq!(Outer::DECLS, &[Inner::WGSL, Outer::WGSL]);
        assert_eq!(
            Outer::WGSL,
            "struct Outer {\n    n: u32,\n    pad0: u32,\n    pad1: u32,\n    pad2: u32,\n    \
             inner: Inner,\n    dims: array<vec4<u32>, 2>,\n    scale: f32,\n}\n"
        );
    }
}

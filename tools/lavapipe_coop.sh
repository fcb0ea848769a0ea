#!/usr/bin/env bash
# Sets up a second lavapipe, one with cooperative matrices, for testing the `coop` kernels on a
# machine without a GPU. Prints the path of its Vulkan ICD file; use it as
#   VK_ICD_FILENAMES=$(bash tools/lavapipe_coop.sh) cargo test --test ops -- matmul::in_f16 attention::in_f16
#
# Why: lavapipe gained VK_KHR_cooperative_matrix in Mesa 26; Debian 12 (CI's and the developers'
# system) has Mesa 25 at most. Debian unstable's Mesa runs on Debian 12 given three things, which
# this script provides without touching the system's own driver:
# - LLVM 22, which Debian 12 ships (libllvm22, from its security updates);
# - glibc 2.38's C23 names of strtol & co. and sscanf (Debian 12 has 2.36): a small library of
#   ours forwards them to the old names, and the driver's GLIBC_2.38 requirement is made weak;
# - libwayland-client 1.24's `wl_fixes_interface`, which only Wayland presentation touches: the
#   same library defines it.
# Everything goes to $PTDIT_LAVAPIPE_COOP_DIR (default /opt/ptdit-lavapipe-coop) and is reused
# while the driver's version is unchanged. Fails, saying why, when a step does.
set -euo pipefail

dir=${PTDIT_LAVAPIPE_COOP_DIR:-/opt/ptdit-lavapipe-coop}
icd=$dir/lvp_coop_icd.json
fail() { echo "tools/lavapipe_coop.sh: $*" >&2; exit 1; }

if [ -f "$icd" ] && [ -f "$dir/ok" ]; then
    echo "$icd"
    exit 0
fi
mkdir -p "$dir"
cd "$dir"

# Debian unstable's binary packages, pinned below every other release so that nothing on the
# system is ever installed from it: only `apt-get download` reads it.
if ! [ -f /etc/apt/sources.list.d/ptdit-unstable.sources ]; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: unstable\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        > /etc/apt/sources.list.d/ptdit-unstable.sources
    printf 'Package: *\nPin: release a=unstable\nPin-Priority: -10\n' \
        > /etc/apt/preferences.d/ptdit-unstable
fi
apt-get update -qq >&2 || fail "apt-get update failed"
apt-get install -y -qq libllvm22 patchelf gcc >&2 \
    || fail "could not install libllvm22, patchelf and gcc from Debian 12"

rm -rf pkgs && mkdir pkgs
(cd pkgs && apt-get download -qq mesa-vulkan-drivers/unstable libdisplay-info3/unstable >&2) \
    || fail "could not download mesa-vulkan-drivers and libdisplay-info3 from Debian unstable"
for deb in pkgs/*.deb; do dpkg-deb -x "$deb" pkgs/root; done
lib=pkgs/root/usr/lib/x86_64-linux-gnu
[ -f "$lib/libvulkan_lvp.so" ] || fail "the unstable package has no libvulkan_lvp.so"
llvm=$(objdump -p "$lib/libvulkan_lvp.so" | awk '/NEEDED/ && /libLLVM/ { print $2 }')
[ -e "/usr/lib/x86_64-linux-gnu/$llvm" ] \
    || fail "unstable's lavapipe needs $llvm, which Debian 12 does not have; update this script"

cat > shim.c <<'EOF'
/* glibc 2.38 gave strtol & co. and sscanf the C23 names that new compilers call; these forward
 * them to glibc 2.36's (the C23 forms also read a 0b prefix, which Mesa's option strings never
 * have). wl_fixes_interface: libwayland-client 1.24's, read only to present on Wayland. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
long __isoc23_strtol(const char *s, char **e, int b) { return strtol(s, e, b); }
unsigned long __isoc23_strtoul(const char *s, char **e, int b) { return strtoul(s, e, b); }
long long __isoc23_strtoll(const char *s, char **e, int b) { return strtoll(s, e, b); }
unsigned long long __isoc23_strtoull(const char *s, char **e, int b) { return strtoull(s, e, b); }
int __isoc23_sscanf(const char *s, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int r = vsscanf(s, f, ap);
    va_end(ap);
    return r;
}
struct wl_interface { const char *name; int version; int method_count; const void *methods; int event_count; const void *events; };
const struct wl_interface wl_fixes_interface = { "wl_fixes", 1, 0, 0, 0, 0 };
EOF
gcc -O2 -shared -fPIC -o libptdit_compat.so shim.c || fail "could not build the compatibility library"

cp "$lib/libvulkan_lvp.so" "$lib"/libdisplay-info.so.3* .
# One patchelf call per change: patchelf 0.14 mixes up the string table when given several.
for s in strtol strtoul strtoll strtoull sscanf; do
    patchelf --clear-symbol-version "__isoc23_$s" libvulkan_lvp.so
done
patchelf --add-needed "$dir/libptdit_compat.so" libvulkan_lvp.so
patchelf --add-needed "$dir/libdisplay-info.so.3" libvulkan_lvp.so

# Marks the driver's GLIBC_2.38 requirement weak (VER_FLG_WEAK): the loader then accepts a glibc
# without that version, and the symbols that needed it now resolve to the library above.
python3 - libvulkan_lvp.so <<'EOF' || fail "could not mark GLIBC_2.38 weak"
import struct, sys
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
shoff, = struct.unpack_from("<Q", b, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3A)
secs = [struct.unpack_from("<IIQQQQIIQQ", b, shoff + i * shentsize) for i in range(shnum)]
def cstr(off):
    return b[off:b.index(0, off)].decode()
names = {cstr(secs[shstrndx][4] + s[0]): s for s in secs}
dynstr = names[".dynstr"][4]
off, found = names[".gnu.version_r"][4], 0
while True:
    _, count, _, aux, nxt = struct.unpack_from("<HHIII", b, off)
    a = off + aux
    for _ in range(count):
        _, flags, _, name, anext = struct.unpack_from("<IHHII", b, a)
        if cstr(dynstr + name) == "GLIBC_2.38":
            struct.pack_into("<H", b, a + 4, flags | 2)
            found += 1
        a += anext
    if not nxt:
        break
    off += nxt
open(path, "wb").write(b)
print(f"GLIBC_2.38 requirements made weak: {found}", file=sys.stderr)
EOF

printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s/libvulkan_lvp.so", "api_version": "1.4.0"}}\n' \
    "$dir" > "$icd"
# Whether it loads and offers cooperative matrices is for the tests to say
# (PTDIT_REQUIRE_COOP=1 makes tests/ops.rs fail on a device without them).
rm -rf pkgs
touch ok
echo "$icd"

#!/usr/bin/env bash
# Packs a CUDA build for a GPU machine that has the CUDA runtime but none of our other
# dependencies (no apt, MPI, HDF5, yaml-cpp): the stripped `hyscale` and `test_gpu`, every
# non-CUDA shared library `ldd` lists (never libcu*/libnccl/libnvidia*: the GPU machine has its
# own), the C library kept apart and used only when the machine's is older, and wrappers that
# set the library path. Usage:
#   [E2E_REF=runs/cpu/metrics.jsonl] scripts/gpu_carry.sh BUILD_DIR DEST   # e.g. build-gpu .gpu_carry
# (run from the repository root). Over a size-limited transfer, pack DEST with tar + xz (~20 MB).
# Then on the GPU machine: scripts/gpu_check.sh DEST
set -euo pipefail
BUILD=$1
DEST=$2
rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/lib" "$DEST/glibc" "$DEST/tests"
for b in hyscale tests/test_gpu; do
  cp "$BUILD/$b" "$DEST/bin/$(basename "$b").real"
  strip --strip-unneeded "$DEST/bin/$(basename "$b").real"
done
ldd "$BUILD/hyscale" "$BUILD/tests/test_gpu" | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
  name=$(basename "$lib")
  case "$name" in
    libcu*|libnccl*|libnvidia*|libnvrtc*|libnvJitLink*) ;;                 # the machine's own
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) cp -L "$lib" "$DEST/glibc/" ;;
    *) cp -L "$lib" "$DEST/lib/" ;;
  esac
done
cp -L /lib64/ld-linux-x86-64.so.2 "$DEST/glibc/"
strip --strip-unneeded "$DEST"/lib/*.so* 2> /dev/null || true

cat > "$DEST/run.sh" <<'EOF'
#!/usr/bin/env bash
# run.sh PROGRAM ARGS...: runs bin/PROGRAM.real with the carried libraries and the machine's CUDA.
D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=$1; shift
cudadirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && cudadirs="$cudadirs:$d"
done
if [ ! -s "$D/.nccl_dir" ]; then   # find the machine's NCCL once (CUDA dirs, then Python wheels)
  n=$(ls /usr/local/cuda/lib*/libnccl.so.2 /usr/lib/x86_64-linux-gnu/libnccl.so.2 2>/dev/null | head -1)
  [ -z "$n" ] && n=$(find / -xdev -name 'libnccl.so.2' 2>/dev/null | head -1)
  dirname "${n:-/nonexistent/x}" > "$D/.nccl_dir"
fi
export LD_LIBRARY_PATH="$D/lib$cudadirs:$(cat "$D/.nccl_dir")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ ! -e "$D/.mode" ]; then   # the machine's C library when it is new enough, else the carried one
  if "$D/bin/hyscale.real" --help > /dev/null 2>&1; then echo system > "$D/.mode"; else echo carried > "$D/.mode"; fi
fi
if [ "$(cat "$D/.mode")" = system ]; then exec "$D/bin/$P.real" "$@"; fi
exec "$D/glibc/ld-linux-x86-64.so.2" --library-path "$D/lib:$D/glibc$cudadirs:$(cat "$D/.nccl_dir")" "$D/bin/$P.real" "$@"
EOF
# The end-to-end check's inputs when they exist here: the prepared fortunes corpus (the GPU machine
# has no apt to install it) and a CPU reference run of configs/gpu_e2e_sambay_d8.yaml (E2E_REF =
# its metrics.jsonl; five minutes on 2 cores, so compute it here rather than on the lease).
[ -d data/fortunes ] && cp -r data/fortunes "$DEST/fortunes"
if [ -n "${E2E_REF:-}" ]; then mkdir -p "$DEST/e2e_ref" && cp "$E2E_REF" "$DEST/e2e_ref/metrics.jsonl"; fi
printf '#!/usr/bin/env bash\nexec "$(dirname "${BASH_SOURCE[0]}")/run.sh" hyscale "$@"\n' > "$DEST/hyscale"
printf '#!/usr/bin/env bash\nexec "$(dirname "${BASH_SOURCE[0]}")/../run.sh" test_gpu "$@"\n' > "$DEST/tests/test_gpu"
chmod +x "$DEST/run.sh" "$DEST/hyscale" "$DEST/tests/test_gpu"
du -sh "$DEST"

#!/usr/bin/env bash
# Installs the CUDA 13.0 toolkit that `--features cuda` needs to compile (nvcc for candle's
# kernels, the headers, the runtime, cuBLAS, cuRAND, NVRTC) from NVIDIA's PyPI wheels, with no
# GPU and no driver, then prints the environment the build needs as `export` lines:
#
#   eval "$(bash scripts/install-cuda-toolkit.sh)"
#   cargo check --workspace --features cuda
#
# Why these wheels and versions:
# - The `-cu12` nvcc wheel holds only ptxas; the CUDA 13 wheels together lay out a whole
#   toolkit under site-packages/nvidia/cu13 (bin/nvcc, include/, lib/).
# - Without nvidia-cuda-cccl, cuda_fp16.h misses <nv/target>.
# - Pinned to 13.0.x: the GPU machines this project borrows run a CUDA 13.0 driver, which does
#   not load PTX made by a newer toolkit.
# - candle 0.11's cudarc 0.19 refuses an nvcc it does not know ("Unsupported cuda toolkit
#   version"); CUDARC_CUDA_VERSION names the version to bind.
# - CUDA_COMPUTE_CAP: with no GPU to query, candle's build script must be told which
#   architecture to compile for (90 = H100/H200).
# - The `cuda` feature links libcuda (cudarc's dynamic-linking); a linked binary on a machine
#   without a driver needs a link-only stub, which the runtime wheel ships in lib/stubs when
#   present; otherwise one is made here from an empty shared object.
#
# - NCCL is not needed to build: oneshot-dist opens libnccl at run time. With CUDA_WITH_NCCL=1
#   the script also installs nvidia-nccl-cu13 (2.27.7, the first NCCL with CUDA 13 wheels) and
#   prints ONESHOT_NCCL_LIB, the libnccl.so.2 to copy into a GPU bundle (docs/GPU.md).
#
# Options (environment): CUDA_PREFIX (default target/cuda-toolkit, beside the build outputs) is the
# venv the wheels go into; CUDA_COMPUTE_CAP (default 90); CUDA_WITH_NCCL (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${CUDA_PREFIX:-$PWD/target/cuda-toolkit}"
cap="${CUDA_COMPUTE_CAP:-90}"

# Versions of the CUDA 13.0 release (update 2 for the compiler pieces, 13.0-era cuBLAS/cuRAND).
wheels=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
  "nvidia-cuda-nvrtc==13.0.88"
  "nvidia-cublas==13.0.2.14"
  "nvidia-curand==10.4.0.35"
)
if [ "${CUDA_WITH_NCCL:-0}" = 1 ]; then
  wheels+=("nvidia-nccl-cu13==2.27.7")
fi

if [ ! -x "$prefix/bin/python" ]; then
  python3 -m venv "$prefix" >&2
fi
stamp="$prefix/.wheels"
want="$(printf '%s\n' "${wheels[@]}")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$prefix/bin/python" -m pip install -q --disable-pip-version-check --no-deps "${wheels[@]}" >&2
  printf '%s\n' "$want" >"$stamp"
fi

site="$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
root="$site/nvidia/cu13"
if [ ! -x "$root/bin/nvcc" ]; then
  echo "install-cuda-toolkit: no nvcc under $root after installing the wheels" >&2
  exit 1
fi
# The wheels name some libraries only with their soname (libcublas.so.13); the linker wants the
# unversioned name.
for lib in "$root"/lib/lib*.so.*; do
  [ -e "$lib" ] || continue
  base="${lib%%.so.*}.so"
  [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
done
# libcuda comes with the driver, not the toolkit: a stub satisfies the linker; the real one is
# loaded at run time on a GPU machine.
stubs="$root/lib/stubs"
if [ ! -e "$stubs/libcuda.so" ]; then
  mkdir -p "$stubs"
  echo "" | cc -shared -x c - -o "$stubs/libcuda.so"
fi

# cudarc spells version M.m as "M0m0" (13.0 -> 13000).
version="$("$root/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\10\20/p')"
cat <<ENV
export CUDA_ROOT="$root"
export CUDA_PATH="$root"
export CUDA_TOOLKIT_ROOT_DIR="$root"
export PATH="$root/bin:\$PATH"
export LIBRARY_PATH="$root/lib:$stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export CUDARC_CUDA_VERSION="$version"
export CUDA_COMPUTE_CAP="$cap"
ENV
if [ "${CUDA_WITH_NCCL:-0}" = 1 ]; then
  nccl="$site/nvidia/nccl/lib/libnccl.so.2"
  if [ ! -e "$nccl" ]; then
    echo "install-cuda-toolkit: no $nccl after installing nvidia-nccl-cu13" >&2
    exit 1
  fi
  echo "export ONESHOT_NCCL_LIB=\"$nccl\""
fi

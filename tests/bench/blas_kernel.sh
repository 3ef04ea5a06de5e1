# Sourced by the benchmark scripts (sh and bash): which OpenBLAS kernel both sides run.
#   BLAS_KERNEL=auto (default)  unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the
#                               benchmark, so OpenBLAS picks the kernel for this processor
#   BLAS_KERNEL=env             keep them as the environment sets them
# Some machines set OPENBLAS_CORETYPE (Haswell, say) for every process, because older
# OpenBLAS builds misbehave on their processors; that halves the sgemm rate of an AVX-512
# core, for PyTorch (which calls the same OpenBLAS for nn.Linear) as for mmfuse. A comparison
# against PyTorch at its best runs both sides on the kernel OpenBLAS would pick. Tests and
# CI never unset them. Prints the kernel OpenBLAS reports, on stderr.
case "${BLAS_KERNEL:-auto}" in
auto) unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE ;;
env) ;;
*) echo "BLAS_KERNEL must be auto or env, not '$BLAS_KERNEL'" >&2; exit 2 ;;
esac
blas_core=$(/usr/bin/python3 -c 'import ctypes
f = ctypes.CDLL("libopenblas.so.0").openblas_get_corename
f.restype = ctypes.c_char_p
print(f().decode())' 2>/dev/null || echo unknown)
echo "OpenBLAS kernel: $blas_core (BLAS_KERNEL=${BLAS_KERNEL:-auto}, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset})" >&2

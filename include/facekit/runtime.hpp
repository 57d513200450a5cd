#pragma once
// Process-wide runtime settings of the tensor library.

#include <string>

namespace facekit {

/// Threads each network may use for one call (intra-op parallelism). On small machines 1 is often fastest:
/// run independent images on separate threads instead.
void set_num_threads(int n);
int num_threads();

/// Lets the C allocator keep freed network buffers for reuse (glibc: mmap threshold 64 MiB, trim threshold
/// 256 MiB; elsewhere nothing). A network's activations are fresh tensors of 0.1-2 MB each; by default glibc maps
/// such blocks from the kernel and returns them on free, so every layer pays page faults on memory it just
/// released (BlazeFace-back: ~2 ms of a ~9 ms pass, docs/results.md). The price is resident memory that stays
/// with the process after a peak. A process-wide setting: the CLI (and the profiling tools in bench/) call it at
/// start; an application embedding the library (the Python module included) decides for itself.
/// FACEKIT_DEFAULT_MALLOC=1 makes it do nothing (for A/B measurements).
void reuse_freed_buffers();

/// Whether this CPU runs bf16 arithmetic natively (AVX512-BF16 or AMX-BF16, asked of the CPU with cpuid, with
/// AVX-512 enabled by the OS): where it does not, bf16 networks are emulated and slower than fp32.
bool cpu_has_native_bf16();
/// "fp32", "bf16", "int8" or "auto" (bf16 where cpu_has_native_bf16(), else fp32) -> "fp32", "bf16" or "int8".
/// Throws Error(kInvalidArgument) for anything else.
const char* resolve_precision(const std::string& precision);

}  // namespace facekit

#pragma once
// Process-wide runtime settings of the tensor library.

#include <string>

namespace facekit {

/// Threads each network may use for one call (intra-op parallelism). On small machines 1 is often fastest:
/// run independent images on separate threads instead.
void set_num_threads(int n);
int num_threads();

/// Whether this CPU runs bf16 arithmetic natively (AVX512-BF16 or AMX-BF16, asked of the CPU with cpuid, with
/// AVX-512 enabled by the OS): where it does not, bf16 networks are emulated and slower than fp32.
bool cpu_has_native_bf16();
/// "fp32", "bf16", "int8" or "auto" (bf16 where cpu_has_native_bf16(), else fp32) -> "fp32", "bf16" or "int8".
/// Throws Error(kInvalidArgument) for anything else.
const char* resolve_precision(const std::string& precision);

}  // namespace facekit

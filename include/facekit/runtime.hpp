#pragma once
// Process-wide runtime settings of the tensor library.

namespace facekit {

/// Threads each network may use for one call (intra-op parallelism). On small machines 1 is often fastest:
/// run independent images on separate threads instead.
void set_num_threads(int n);
int num_threads();

}  // namespace facekit

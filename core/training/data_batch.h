// A fresh batch of a data target's rows per iteration, what the trainers from data share (sd-generator,
// ingd): `batch` distinct rows drawn without replacement, or every row when there are no more.
#ifndef SAMPLED_CORE_TRAINING_DATA_BATCH_H_
#define SAMPLED_CORE_TRAINING_DATA_BATCH_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/common/points.h"
#include "core/common/rng.h"

namespace sampled::training {

// Not thread-safe; the permutation scratch is the identity between calls (Rng::SampleWithoutReplacement), so
// the rows drawn depend on the generator alone.
class DataBatch {
 public:
  // The rows of `data` for this iteration into `out` (in T), drawn with `rng` unless all of them are taken.
  template <typename T>
  void Gather(const Points& data, int64_t batch, Rng& rng, PointsT<T>* out) {
    const int64_t n = data.rows(), rows = std::min<int64_t>(batch, n);
    if (rows == n) {
      if (out->rows() != n) *out = data.cast<T>();
      return;
    }
    if (static_cast<int64_t>(perm_.size()) != n) {
      perm_.resize(n);
      for (int64_t i = 0; i < n; ++i) perm_[i] = i;
    }
    index_.resize(rows);
    rng.SampleWithoutReplacement(n, rows, perm_.data(), index_.data());
    out->resize(rows, data.cols());
    for (int64_t i = 0; i < rows; ++i) out->row(i) = data.row(index_[i]).cast<T>();
  }

 private:
  std::vector<int64_t> perm_, index_;
};

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_DATA_BATCH_H_

// The server's objects as the state directory keeps them: what the Backend writes when a session, target,
// sampler or job is made, changes state or goes, and what it reads back at start to rebuild them (see
// docs/architecture.md, "Durable state"). Records are named fields (record.h); bulk data (arrays, model
// archives, sampler files, checkpoints) are checksummed files (blob_file.h).
//
// Thread-safe.
#ifndef SAMPLED_SERVER_STORE_DURABLE_STATE_H_
#define SAMPLED_SERVER_STORE_DURABLE_STATE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/jobs/checkpoint.h"
#include "server/jobs/flow_job.h"
#include "server/jobs/job.h"
#include "server/sessions/session_manager.h"
#include "server/store/record.h"
#include "server/store/state_store.h"

namespace sampled::server {

// How a target was made, enough to make it again.
struct TargetRecipe {
  std::string kind;  // "data" (an array file), "density" (a family's parameters), "torchscript" (an archive)
  std::string family;
  int64_t dim = 0;
  ParamMap params;
  std::string data_target_id;  // a density defined over a data target
  bool energy = false;         // torchscript: the model returns an energy
};

TargetRecipe DataRecipe();
TargetRecipe DensityRecipe(std::string family, int64_t dim, ParamMap params, std::string data_target_id);
TargetRecipe TorchScriptRecipe(int64_t dim, bool energy);

// A job's fixed part: the kind-specific spec (flow: FlowJobSpec; training: the request's settings) as a
// record, written once.
Record EncodeFlowSpec(const FlowJobSpec& spec);
FlowJobSpec DecodeFlowSpec(const Record& r);
Record EncodeTrainConfig(const training::TrainConfig& c);
training::TrainConfig DecodeTrainConfig(const Record& r);
Record EncodeSnapshot(const JobSnapshot& s);
JobSnapshot DecodeSnapshot(const Record& r);

class DurableState final : public JobStore {
 public:
  static absl::StatusOr<std::shared_ptr<DurableState>> Open(const std::string& dir);

  StateStore& store() { return *store_; }

  absl::Status SaveSession(const SessionInfo& info);
  absl::Status DeleteSession(const std::string& session_id) { return store_->DeleteSession(session_id); }
  // `payload`: the target's file (an array for "data", the archive for "torchscript"), written first.
  absl::Status SaveTarget(const TargetEntry& entry, const TargetRecipe& recipe,
                          const std::vector<std::string_view>& payload);
  // A deleted target that jobs still run on: its row stays, marked retired (restored for those jobs only,
  // not listed).
  absl::Status RetireTarget(const std::string& target_id);
  static bool IsRetired(const StoredRow& row);
  absl::Status SaveSampler(const SamplerEntry& entry);
  // The job's record (`spec`: its fixed part), its snapshot, and its first checkpoint.
  absl::Status SaveJob(const JobSnapshot& snapshot, const Record& spec, std::string_view checkpoint);
  absl::Status Delete(const std::string& id) { return store_->Delete(id); }

  // JobStore.
  absl::Status SaveCheckpoint(const std::string& job_id, std::string_view bytes) override;
  void SaveSnapshot(const JobSnapshot& snapshot) override;

  // Files.
  absl::StatusOr<std::string> ReadTargetFile(const std::string& target_id) const;
  absl::StatusOr<std::string> ReadSamplerFile(const std::string& sampler_id) const;
  absl::StatusOr<std::string> ReadCheckpoint(const std::string& job_id) const;

  static SessionInfo DecodeSession(const StoredRow& row, const Record& r);
  static TargetRecipe DecodeRecipe(const Record& r);
  // A sampler's entry as SaveSampler recorded it, without its model (that is in its file).
  static SamplerEntry DecodeSampler(const StoredRow& row, const Record& r);

 private:
  explicit DurableState(std::unique_ptr<StateStore> store) : store_(std::move(store)) {}
  // Writes `payload` (when not empty) as the row's file ID.SUFFIX, then the row; undoes both on failure.
  absl::Status SaveWithFile(const StoredRow& row, const std::string& suffix,
                            const std::vector<std::string_view>& payload);
  std::unique_ptr<StateStore> store_;
};

// The array payload of a "data" target: rows, cols (u64 LE) and the row-major doubles, without a copy.
std::vector<std::string_view> ArrayPayload(const Points& points, std::string* header);
absl::StatusOr<Points> ParseArrayPayload(std::string_view bytes);

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_STORE_DURABLE_STATE_H_

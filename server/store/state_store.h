// The state directory (--state-dir): what the server holds, kept on disk so that it survives a restart.
//
//   DIR/sampled.db     SQLite (WAL): one row per session, target, sampler and job (its record: how it was
//                      made; and, for a job, its last recorded snapshot), and the request ids of
//                      idempotent calls; a schema version with the migrations that reach it
//   DIR/blobs/ID.*     arrays, model archives, sampler files and job checkpoints (blob_file.h: atomic,
//                      checksummed)
//   DIR/LOCK           held (flock) by the one server that uses the directory
//
// A file is written before the row that refers to it, and a row is deleted before its files, so a crash
// leaves at worst an unreferenced file, removed at the next open. Thread-safe: one connection, serialised.
#ifndef SAMPLED_SERVER_STORE_STATE_STORE_H_
#define SAMPLED_SERVER_STORE_STATE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct sqlite3;

namespace sampled::server {

// The schema this build writes. Open migrates an older store to it and refuses a newer one.
constexpr int kSchemaVersion = 1;

struct StoredRow {
  std::string id;
  std::string kind;  // "session" | "target" | "sampler" | "job"
  std::string session_id;
  std::string record;  // Record bytes (record.h): fixed when the object is made
  std::string state;   // Record bytes: a job's last recorded snapshot (empty for the others)
};

struct StoredRequest {
  std::string kind;       // which call ("CreateSession", "StartFlow", ...)
  std::string object_id;  // what it made
  absl::Time time;
};

class StateStore {
 public:
  // Creates the directory as needed, takes its lock, opens (or creates) the database and migrates it.
  // FAILED_PRECONDITION when another server holds the directory or the schema is newer than this build.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& dir);
  ~StateStore();

  const std::string& dir() const { return dir_; }
  int schema_version() const { return schema_version_; }

  // Inserts or replaces a row (a replaced row keeps its place in creation order).
  absl::Status Put(const StoredRow& row);
  // Replaces a row's state only.
  absl::Status PutState(const std::string& id, const std::string& state);
  // Removes the row and its files (ID.*). Removing a missing row is OK.
  absl::Status Delete(const std::string& id);
  // Removes a session's rows (the session and everything in it) and their files.
  absl::Status DeleteSession(const std::string& session_id);
  // Every row in creation order.
  absl::StatusOr<std::vector<StoredRow>> List() const;

  // An object's file: DIR/blobs/ID.SUFFIX.
  std::string BlobPath(const std::string& id, const std::string& suffix) const;

  // Idempotent calls: the object a (scope, request id) made, when recorded after `not_before`.
  absl::StatusOr<std::optional<StoredRequest>> GetRequest(const std::string& scope, const std::string& request_id,
                                                          absl::Time not_before) const;
  absl::Status PutRequest(const std::string& scope, const std::string& request_id, const StoredRequest& request);
  // Forgets request ids recorded before `before`.
  absl::Status ExpireRequests(absl::Time before);

  // Files in DIR/blobs that no row refers to (left by a crash between a file and its row): removed.
  int RemoveOrphanFiles();

 private:
  StateStore(std::string dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}
  absl::Status Migrate();
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveFiles(const std::string& id) const;

  const std::string dir_;
  const int lock_fd_;
  int schema_version_ = 0;
  mutable absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_STORE_STATE_STORE_H_

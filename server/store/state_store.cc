#include "server/store/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"

namespace sampled::server {
namespace {

// Migration i takes the schema from version i to i + 1. Later releases append; never edit one that shipped.
const char* const kMigrations[] = {
    // 0 -> 1
    "CREATE TABLE objects ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  session_id TEXT NOT NULL,"
    "  record BLOB NOT NULL,"
    "  state BLOB NOT NULL DEFAULT x'');"
    "CREATE INDEX objects_by_session ON objects(session_id);"
    "CREATE TABLE requests ("
    "  scope TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  object_id TEXT NOT NULL,"
    "  time_us INTEGER NOT NULL,"
    "  PRIMARY KEY (scope, request_id));",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion, "one migration per schema version");

// A prepared statement, finalised when it goes.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  void Bind(int i, std::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, std::string_view bytes) {
    sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  int Step() { return sqlite3_step(stmt_); }
  std::string Text(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<size_t>(n));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

absl::Status SqlError(sqlite3* db, const std::string& what) {
  const int code = sqlite3_errcode(db);
  const std::string message = absl::StrCat("state database: ", what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_FULL) return absl::ResourceExhaustedError(absl::StrCat(message, " (the disk is full)"));
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return absl::DataLossError(message);
  return absl::InternalError(message);
}

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the state directory '", path, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("the state directory is empty");
  if (absl::Status s = MakeDir(dir); !s.ok()) return s;
  if (absl::Status s = MakeDir(absl::StrCat(dir, "/blobs")); !s.ok()) return s;
  const std::string lock_path = absl::StrCat(dir, "/LOCK");
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot open '", lock_path, "': ", std::strerror(errno)));
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return absl::FailedPreconditionError(absl::StrCat("the state directory '", dir,
                                                      "' is in use by another sampled (it holds ", lock_path,
                                                      "); give each server its own --state-dir"));
  }
  std::unique_ptr<StateStore> store(new StateStore(dir, lock_fd));
  {
    absl::MutexLock lock(&store->mu_);
    const std::string db_path = absl::StrCat(dir, "/sampled.db");
    if (sqlite3_open_v2(db_path.c_str(), &store->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      return SqlError(store->db_, absl::StrCat("opening '", db_path, "'"));
    }
    sqlite3_busy_timeout(store->db_, 5000);
    // WAL: a crash never leaves a half-written transaction; FULL: a committed one survives power loss too
    // (the server writes a row per object or state change, never per step).
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=OFF"}) {
      if (absl::Status s = store->Exec(pragma); !s.ok()) return s;
    }
  }
  if (absl::Status s = store->Migrate(); !s.ok()) return s;
  return store;
}

StateStore::~StateStore() {
  {
    absl::MutexLock lock(&mu_);
    if (db_ != nullptr) sqlite3_close(db_);
    db_ = nullptr;
  }
  ::close(lock_fd_);  // releases the lock
}

absl::Status StateStore::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status s = SqlError(db_, absl::StrCat("'", std::string(sql).substr(0, 60), "'"));
    sqlite3_free(error);
    return s;
  }
  return absl::OkStatus();
}

absl::Status StateStore::Migrate() {
  absl::MutexLock lock(&mu_);
  int version = 0;
  {
    Statement q(db_, "PRAGMA user_version");
    if (!q.ok() || q.Step() != SQLITE_ROW) return SqlError(db_, "reading the schema version");
    version = static_cast<int>(q.Int(0));
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("the state directory '", dir_, "' has schema version ", version,
                                                      ", newer than this build's ", kSchemaVersion,
                                                      "; run the newer sampled, or give this one another --state-dir"));
  }
  for (; version < kSchemaVersion; ++version) {
    // Each step in one transaction with its version, so a crash leaves the old version or the new one.
    if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    absl::Status s = Exec(kMigrations[version]);
    if (s.ok()) s = Exec(absl::StrCat("PRAGMA user_version=", version + 1).c_str());
    if (!s.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return s;
    }
    if (absl::Status c = Exec("COMMIT"); !c.ok()) return c;
  }
  schema_version_ = version;
  return absl::OkStatus();
}

absl::Status StateStore::Put(const StoredRow& row) {
  absl::MutexLock lock(&mu_);
  Statement q(db_,
              "INSERT INTO objects(id, kind, session_id, record, state) VALUES(?, ?, ?, ?, ?) "
              "ON CONFLICT(id) DO UPDATE SET record = excluded.record, state = excluded.state");
  if (!q.ok()) return SqlError(db_, "preparing a row");
  q.Bind(1, row.id);
  q.Bind(2, row.kind);
  q.Bind(3, row.session_id);
  q.BindBlob(4, row.record);
  q.BindBlob(5, row.state);
  if (q.Step() != SQLITE_DONE) return SqlError(db_, absl::StrCat("storing ", row.kind, " '", row.id, "'"));
  return absl::OkStatus();
}

absl::Status StateStore::PutState(const std::string& id, const std::string& state) {
  absl::MutexLock lock(&mu_);
  Statement q(db_, "UPDATE objects SET state = ? WHERE id = ?");
  if (!q.ok()) return SqlError(db_, "preparing a state update");
  q.BindBlob(1, state);
  q.Bind(2, id);
  if (q.Step() != SQLITE_DONE) return SqlError(db_, absl::StrCat("storing the state of '", id, "'"));
  return absl::OkStatus();
}

void StateStore::RemoveFiles(const std::string& id) const {
  const std::string blobs = absl::StrCat(dir_, "/blobs");
  DIR* d = ::opendir(blobs.c_str());
  if (d == nullptr) return;
  const std::string prefix = id + ".";
  while (dirent* e = ::readdir(d)) {
    if (std::string_view(e->d_name).substr(0, prefix.size()) == prefix) {
      ::unlink(absl::StrCat(blobs, "/", e->d_name).c_str());
    }
  }
  ::closedir(d);
}

absl::Status StateStore::Delete(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    Statement q(db_, "DELETE FROM objects WHERE id = ?");
    if (!q.ok()) return SqlError(db_, "preparing a delete");
    q.Bind(1, id);
    if (q.Step() != SQLITE_DONE) return SqlError(db_, absl::StrCat("deleting '", id, "'"));
  }
  RemoveFiles(id);
  return absl::OkStatus();
}

absl::Status StateStore::DeleteSession(const std::string& session_id) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    {
      Statement q(db_, "SELECT id FROM objects WHERE session_id = ? OR id = ?");
      if (!q.ok()) return SqlError(db_, "preparing a session's listing");
      q.Bind(1, session_id);
      q.Bind(2, session_id);
      while (q.Step() == SQLITE_ROW) ids.push_back(q.Text(0));
    }
    Statement q(db_, "DELETE FROM objects WHERE session_id = ? OR id = ?");
    if (!q.ok()) return SqlError(db_, "preparing a session's delete");
    q.Bind(1, session_id);
    q.Bind(2, session_id);
    if (q.Step() != SQLITE_DONE) return SqlError(db_, absl::StrCat("deleting session '", session_id, "'"));
  }
  for (const std::string& id : ids) RemoveFiles(id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredRow>> StateStore::List() const {
  absl::MutexLock lock(&mu_);
  Statement q(db_, "SELECT id, kind, session_id, record, state FROM objects ORDER BY seq");
  if (!q.ok()) return SqlError(db_, "preparing the listing");
  std::vector<StoredRow> rows;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    rows.push_back(StoredRow{q.Text(0), q.Text(1), q.Text(2), q.Text(3), q.Text(4)});
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "listing the stored objects");
  return rows;
}

std::string StateStore::BlobPath(const std::string& id, const std::string& suffix) const {
  return absl::StrCat(dir_, "/blobs/", id, ".", suffix);
}

absl::StatusOr<std::optional<StoredRequest>> StateStore::GetRequest(const std::string& scope,
                                                                    const std::string& request_id,
                                                                    absl::Time not_before) const {
  absl::MutexLock lock(&mu_);
  Statement q(db_, "SELECT kind, object_id, time_us FROM requests WHERE scope = ? AND request_id = ? AND time_us >= ?");
  if (!q.ok()) return SqlError(db_, "preparing a request lookup");
  q.Bind(1, scope);
  q.Bind(2, request_id);
  q.BindInt(3, absl::ToUnixMicros(not_before));
  const int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<StoredRequest>();
  if (rc != SQLITE_ROW) return SqlError(db_, "looking up a request id");
  return std::optional<StoredRequest>(StoredRequest{q.Text(0), q.Text(1), absl::FromUnixMicros(q.Int(2))});
}

absl::Status StateStore::PutRequest(const std::string& scope, const std::string& request_id,
                                    const StoredRequest& request) {
  absl::MutexLock lock(&mu_);
  Statement q(db_,
              "INSERT OR REPLACE INTO requests(scope, request_id, kind, object_id, time_us) VALUES(?, ?, ?, ?, ?)");
  if (!q.ok()) return SqlError(db_, "preparing a request record");
  q.Bind(1, scope);
  q.Bind(2, request_id);
  q.Bind(3, request.kind);
  q.Bind(4, request.object_id);
  q.BindInt(5, absl::ToUnixMicros(request.time));
  if (q.Step() != SQLITE_DONE) return SqlError(db_, "recording a request id");
  return absl::OkStatus();
}

absl::Status StateStore::ExpireRequests(absl::Time before) {
  absl::MutexLock lock(&mu_);
  Statement q(db_, "DELETE FROM requests WHERE time_us < ?");
  if (!q.ok()) return SqlError(db_, "preparing the request expiry");
  q.BindInt(1, absl::ToUnixMicros(before));
  if (q.Step() != SQLITE_DONE) return SqlError(db_, "expiring request ids");
  return absl::OkStatus();
}

int StateStore::RemoveOrphanFiles() {
  std::set<std::string> ids;
  if (absl::StatusOr<std::vector<StoredRow>> rows = List(); rows.ok()) {
    for (const StoredRow& r : *rows) ids.insert(r.id);
  } else {
    return 0;
  }
  const std::string blobs = absl::StrCat(dir_, "/blobs");
  DIR* d = ::opendir(blobs.c_str());
  if (d == nullptr) return 0;
  std::vector<std::string> orphans;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string id = name.substr(0, name.find('.'));
    if (ids.count(id) == 0 || name.find(".tmp-") != std::string::npos) orphans.push_back(name);
  }
  ::closedir(d);
  for (const std::string& name : orphans) ::unlink(absl::StrCat(blobs, "/", name).c_str());
  return static_cast<int>(orphans.size());
}

}  // namespace sampled::server

#include "server/store/blob_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/common/byte_codec.h"

namespace sampled::server {
namespace {

constexpr std::string_view kMagic = "SDBLOB01";
constexpr size_t kHeader = 24;

absl::Status IoError(const std::string& what, const std::string& path, int err) {
  if (err == EFBIG) {
    return absl::ResourceExhaustedError(absl::StrCat("writing '", path, "' passed the largest file allowed (EFBIG)"));
  }
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat("the state directory's disk is full while ", what, " '", path,
                                                     "'; free space or move --state-dir"));
  }
  return absl::InternalError(absl::StrCat(what, " '", path, "' failed: ", std::strerror(err)));
}

absl::Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), std::min<size_t>(bytes.size(), size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("writing", path, errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

}  // namespace

uint32_t Crc32(std::string_view bytes, uint32_t crc) {
  uLong c = crc;
  while (!bytes.empty()) {
    const size_t n = std::min<size_t>(bytes.size(), size_t{1} << 30);
    c = ::crc32(c, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(n));
    bytes.remove_prefix(n);
  }
  return static_cast<uint32_t>(c);
}

absl::Status WriteBlobFile(const std::string& path, const std::vector<std::string_view>& pieces) {
  uint64_t length = 0;
  uint32_t crc = 0;
  for (std::string_view p : pieces) {
    length += p.size();
    crc = Crc32(p, crc);
  }
  std::string header(kMagic);
  ByteWriter w(&header);
  w.U64(length);
  w.U64(crc);  // the CRC in the low four bytes, then four zero bytes
  thread_local std::mt19937_64 random{std::random_device{}()};
  const std::string tmp = absl::StrCat(path, ".tmp-", random() % 1000000000);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("creating", tmp, errno);
  absl::Status s = WriteAll(fd, header, tmp);
  for (size_t i = 0; s.ok() && i < pieces.size(); ++i) s = WriteAll(fd, pieces[i], tmp);
  if (s.ok() && ::fsync(fd) != 0) s = IoError("flushing", tmp, errno);
  if (::close(fd) != 0 && s.ok()) s = IoError("closing", tmp, errno);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = IoError("renaming", tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  // The rename is durable once the directory is flushed.
  const int dir = ::open(DirOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadBlobFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("file '", path, "' is missing"));
    return absl::InternalError(absl::StrCat("opening '", path, "' failed: ", std::strerror(errno)));
  }
  std::string bytes;
  char buffer[1 << 16];
  const off_t size = ::lseek(fd, 0, SEEK_END);
  ::lseek(fd, 0, SEEK_SET);
  if (size > 0) bytes.reserve(static_cast<size_t>(size));
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("reading '", path, "' failed: ", std::strerror(err)));
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  const auto corrupt = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("file '", path, "' is corrupted: ", why));
  };
  if (bytes.size() < kHeader || std::string_view(bytes).substr(0, kMagic.size()) != kMagic) {
    return corrupt("it is not a sampled state file (bad header)");
  }
  ByteReader r(std::string_view(bytes).substr(kMagic.size(), 16));
  uint64_t length = 0, crc = 0;
  r.U64(&length);
  r.U64(&crc);
  if (length != bytes.size() - kHeader) {
    return corrupt(
        absl::StrCat("it holds ", bytes.size() - kHeader, " payload bytes; its header says ", length, " (truncated?)"));
  }
  const uint32_t actual = Crc32(std::string_view(bytes).substr(kHeader));
  if (actual != static_cast<uint32_t>(crc) || (crc >> 32) != 0) {
    return corrupt(absl::StrCat("its checksum does not match (CRC-32 ", actual, ", header ", crc, ")"));
  }
  bytes.erase(0, kHeader);
  return bytes;
}

}  // namespace sampled::server

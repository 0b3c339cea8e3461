// Files the state directory keeps (arrays, model archives, sampler files, job checkpoints), written so that
// a reader never sees half of one: a temporary file is written, flushed to disk (fsync), and renamed over
// the old name, and the directory is flushed too. Each file checks itself: a header holds the payload's
// length and CRC-32, so a truncated or corrupted file is found when it is read.
//
//   "SDBLOB01" | payload length (u64 LE) | CRC-32 of the payload (u32 LE) | 0 (u32) | payload
#ifndef SAMPLED_SERVER_STORE_BLOB_FILE_H_
#define SAMPLED_SERVER_STORE_BLOB_FILE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sampled::server {

// Writes `pieces` (concatenated) as the payload of `path`, atomically. RESOURCE_EXHAUSTED when the disk is
// full, INTERNAL for another I/O error; either way a file already at `path` is left as it was.
absl::Status WriteBlobFile(const std::string& path, const std::vector<std::string_view>& pieces);

// The payload of a file written by WriteBlobFile. NOT_FOUND when it is missing, DATA_LOSS when it is
// truncated, corrupted or not such a file (the message names the file and what is wrong).
absl::StatusOr<std::string> ReadBlobFile(const std::string& path);

// CRC-32 (the zlib polynomial) of `bytes`, continuing from `crc`.
uint32_t Crc32(std::string_view bytes, uint32_t crc = 0);

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_STORE_BLOB_FILE_H_

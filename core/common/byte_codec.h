// Little-endian binary encoding of the plain values the server checkpoints and exports (flow states,
// training states, sampler files): a writer that appends to a string and a reader that checks every length
// against what is left, so hostile bytes make it return false, never read past the end or allocate more
// than the input could hold.
#ifndef SAMPLED_CORE_COMMON_BYTE_CODEC_H_
#define SAMPLED_CORE_COMMON_BYTE_CODEC_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/points.h"

namespace sampled {

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    U64(bits);
  }
  void String(std::string_view s) {
    U64(s.size());
    out_->append(s.data(), s.size());
  }
  void Floats(const std::vector<float>& v) {
    U64(v.size());
    for (float f : v) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      for (int i = 0; i < 4; ++i) out_->push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
    }
  }
  void Matrix(const Points& m) {
    U64(static_cast<uint64_t>(m.rows()));
    U64(static_cast<uint64_t>(m.cols()));
    for (int64_t i = 0; i < m.size(); ++i) F64(m.data()[i]);
  }

 private:
  std::string* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
  bool Magic(std::string_view magic) {
    if (bytes_.size() - pos_ < magic.size() || bytes_.substr(pos_, magic.size()) != magic) return false;
    pos_ += magic.size();
    return true;
  }
  bool U64(uint64_t* v) {
    if (bytes_.size() - pos_ < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!U64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool F64(double* v) {
    uint64_t bits;
    if (!U64(&bits)) return false;
    std::memcpy(v, &bits, 8);
    return true;
  }
  bool String(std::string* s) {
    uint64_t n;
    if (!U64(&n) || n > bytes_.size() - pos_) return false;
    s->assign(bytes_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool Floats(std::vector<float>* v) {
    uint64_t n;
    if (!U64(&n) || n > (bytes_.size() - pos_) / 4) return false;
    v->resize(n);
    for (uint64_t k = 0; k < n; ++k) {
      uint32_t bits = 0;
      for (int i = 0; i < 4; ++i) bits |= static_cast<uint32_t>(static_cast<unsigned char>(bytes_[pos_ + i])) << (8 * i);
      std::memcpy(&(*v)[k], &bits, 4);
      pos_ += 4;
    }
    return true;
  }
  bool Matrix(Points* m) {
    uint64_t rows, cols;
    if (!U64(&rows) || !U64(&cols)) return false;
    if (cols != 0 && rows > (bytes_.size() - pos_) / 8 / cols) return false;
    if (cols == 0 && rows > (uint64_t{1} << 40)) return false;
    m->resize(static_cast<int64_t>(rows), static_cast<int64_t>(cols));
    for (int64_t i = 0; i < m->size(); ++i) {
      if (!F64(m->data() + i)) return false;
    }
    return true;
  }
  bool Done() const { return pos_ == bytes_.size(); }
  size_t position() const { return pos_; }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_COMMON_BYTE_CODEC_H_

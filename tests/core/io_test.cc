#include <cstdio>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/io/array_codec.h"
#include "core/io/array_file.h"

namespace sampled {
namespace {

using ::testing::HasSubstr;

Points Sample(int64_t n, int64_t d) {
  Rng rng(n * 7 + d);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p;
}

// Rows known from the header (one allocation) or not (the buffer grows: 3000 rows cross its growth steps).
TEST(ArrayCodecTest, RoundTripsThroughArbitraryChunks) {
  const Points p = Sample(3000, 3);
  for (DType t : {DType::kFloat32, DType::kFloat64}) {
    const std::string bytes = EncodeRows(p, 0, p.rows(), t);
    for (size_t chunk : {1u, 5u, 7u, 24u, 4096u}) {
      for (int64_t expected : {int64_t{0}, int64_t{3000}}) {
        ArrayAssembler a(t, 3, 5000, expected);
        for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
          ASSERT_TRUE(a.Append(absl::string_view(bytes).substr(pos, chunk)).ok());
        }
        auto back = a.Finish(3000);
        ASSERT_TRUE(back.ok()) << back.status();
        if (t == DType::kFloat64) {
          EXPECT_EQ(*back, p);
        } else {
          EXPECT_EQ(*back, p.cast<float>().cast<double>());
        }
      }
    }
  }
}

TEST(ArrayCodecTest, RefusesRaggedLimitsAndWrongCounts) {
  const std::string bytes = EncodeRows(Sample(10, 2), 0, 10, DType::kFloat64);
  ArrayAssembler ragged(DType::kFloat64, 3, 100);
  ASSERT_TRUE(ragged.Append(bytes).ok());  // 20 values are not a multiple of 3
  auto s = ragged.Finish();
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("row boundary"));
  ArrayAssembler stray(DType::kFloat64, 2, 100);
  ASSERT_TRUE(stray.Append(bytes.substr(0, bytes.size() - 3)).ok());
  EXPECT_THAT(stray.Finish().status().message(), HasSubstr("stray bytes"));
  ArrayAssembler small(DType::kFloat64, 2, 5);
  EXPECT_EQ(small.Append(bytes).code(), absl::StatusCode::kResourceExhausted);
  ArrayAssembler count(DType::kFloat64, 2, 100);
  ASSERT_TRUE(count.Append(bytes).ok());
  EXPECT_THAT(count.Finish(11).status().message(), HasSubstr("expected 11 rows"));
  ArrayAssembler empty(DType::kFloat32, 2, 100);
  EXPECT_EQ(empty.Finish().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArrayFileTest, NpyRoundTripBothDtypes) {
  const Points p = Sample(33, 4);
  auto f64 = ParseNpy(FormatNpy(p, DType::kFloat64));
  ASSERT_TRUE(f64.ok()) << f64.status();
  EXPECT_EQ(f64->points, p);
  EXPECT_EQ(f64->dtype, DType::kFloat64);
  auto f32 = ParseNpy(FormatNpy(p, DType::kFloat32));
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(f32->dtype, DType::kFloat32);
  EXPECT_EQ(f32->points, p.cast<float>().cast<double>());
}

// Bytes written by numpy 1.24 (np.save of np.arange(6, dtype='<f8').reshape(3, 2) and of a 1-D float32
// array) parse to the same values.
TEST(ArrayFileTest, ParsesNumpyWrittenFiles) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header.push_back('\n');
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) + '\0' + header;
  for (int i = 0; i < 6; ++i) {
    const double v = i;
    bytes.append(reinterpret_cast<const char*>(&v), 8);
  }
  auto a = ParseNpy(bytes);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->points.rows(), 3);
  EXPECT_EQ(a->points(2, 1), 5.0);
  // Fortran order transposes.
  std::string fheader = "{'descr': '<f8', 'fortran_order': True, 'shape': (3, 2), }";
  fheader.append(128 - 10 - fheader.size() - 1, ' ');
  fheader.push_back('\n');
  std::string fbytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(fheader.size()) + '\0' + fheader +
                       bytes.substr(10 + header.size());
  auto f = ParseNpy(fbytes);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->points(0, 1), 3.0);  // column-major: column 1 holds 3, 4, 5
  EXPECT_EQ(f->points(2, 0), 2.0);
}

TEST(ArrayFileTest, NpyRefusesWhatItCannotRead) {
  EXPECT_THAT(ParseNpy("hello").status().message(), HasSubstr("magic"));
  std::string bytes = FormatNpy(Sample(4, 2), DType::kFloat64);
  EXPECT_THAT(ParseNpy(bytes.substr(0, bytes.size() - 1)).status().message(), HasSubstr("truncated"));
  std::string ints = bytes;
  ints.replace(ints.find("<f8"), 3, "<i8");
  EXPECT_THAT(ParseNpy(ints).status().message(), HasSubstr("not supported"));
}

TEST(ArrayFileTest, CsvRoundTripHeaderAndRaggedRows) {
  const Points p = Sample(12, 3);
  auto back = ParseCsv(FormatCsv(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->points, p);  // %.17g round-trips doubles exactly
  auto with_header = ParseCsv("x,y\n1,2\n3,4\n");
  ASSERT_TRUE(with_header.ok());
  EXPECT_EQ(with_header->points.rows(), 2);
  auto ragged = ParseCsv("1,2\n3,4,5\n");
  EXPECT_EQ(ragged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ragged.status().message(), HasSubstr("csv line 2 has 3 values but the first row has 2"));
  EXPECT_THAT(ParseCsv("1,2\n3,abc\n").status().message(), HasSubstr("'abc' is not a number"));
  EXPECT_FALSE(ParseCsv("").ok());
}

TEST(ArrayFileTest, FilesByExtension) {
  const Points p = Sample(5, 2);
  const std::string dir = ::testing::TempDir();
  for (const std::string name : {"a.npy", "b.csv"}) {
    const std::string path = dir + "/" + name;
    ASSERT_TRUE(WriteArrayFile(path, p).ok());
    auto back = ReadArrayFile(path);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->points, p);
    std::remove(path.c_str());
  }
  EXPECT_EQ(ReadArrayFile(dir + "/missing.npy").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(WriteArrayFile(dir + "/x.parquet", p).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sampled

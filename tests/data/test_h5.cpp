// HDF5 helpers: typed round trips, groups, attributes, and clear errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "data/h5.h"
#include "data/test_util.h"

using namespace hyscale::data;
using hyscale::test::TempDir;

TEMPLATE_TEST_CASE("h5: array round trip keeps values and shape", "[data]", float, double,
                   int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t) {
  TempDir dir;
  const std::string path = dir / "arrays.h5";
  std::vector<TestType> values(2 * 3 * 4);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<TestType>(3 * i + 1);
  {
    H5File f = H5File::create(path);
    write_array<TestType>(f, "params/blocks.0.attn.wqkv", values.data(), {2, 3, 4});
    write_array<TestType>(f, "empty", nullptr, {0});
    const TestType one = static_cast<TestType>(7);
    write_array<TestType>(f, "scalar", &one, {});
    f.close();
  }
  H5File f = H5File::open_read(path);
  std::vector<uint64_t> dims;
  CHECK(read_array<TestType>(f, "params/blocks.0.attn.wqkv", &dims) == values);
  CHECK(dims == std::vector<uint64_t>{2, 3, 4});
  CHECK(read_array<TestType>(f, "empty", &dims).empty());
  CHECK(dims == std::vector<uint64_t>{0});
  CHECK(read_array<TestType>(f, "scalar", &dims) == std::vector<TestType>{7});
  CHECK(dims.empty());
  // Conversion on read: any stored numeric type can be read as double.
  const std::vector<double> as_double = read_array<double>(f, "params/blocks.0.attn.wqkv");
  REQUIRE(as_double.size() == values.size());
  CHECK(as_double[5] == 16.0);
}

TEST_CASE("h5: datasets are listed recursively and probed", "[data]") {
  TempDir dir;
  H5File f = H5File::create(dir / "tree.h5");
  const float x[2] = {1, 2};
  write_array<float>(f, "params/b/w", x, {2});
  write_array<float>(f, "params/a", x, {2});
  write_array<float>(f, "opt/m/params/a", x, {2});
  CHECK(has_dataset(f, "params/b/w"));
  CHECK_FALSE(has_dataset(f, "params/b"));        // a group, not a dataset
  CHECK_FALSE(has_dataset(f, "params/missing"));
  CHECK_FALSE(has_dataset(f, "nope/deeper/x"));   // missing intermediate group: false, no throw
  CHECK(list_datasets(f, "/") ==
        std::vector<std::string>{"opt/m/params/a", "params/a", "params/b/w"});
  CHECK(list_datasets(f, "params") == std::vector<std::string>{"a", "b/w"});
  // Writing the same name twice is an error, not a silent overwrite.
  REQUIRE_THROWS_WITH(write_array<float>(f, "params/a", x, {2}),
                      Catch::Contains("params/a") && Catch::Contains("already exists"));
}

TEST_CASE("h5: missing dataset and out-of-range conversions are errors", "[data]") {
  TempDir dir;
  const std::string path = dir / "c.h5";
  {
    H5File f = H5File::create(path);
    const uint32_t big[2] = {5, 70000};
    write_array<uint32_t>(f, "big", big, {2});
    const double frac[1] = {1.5};
    write_array<double>(f, "frac", frac, {1});
    const double nan[1] = {std::numeric_limits<double>::quiet_NaN()};
    write_array<double>(f, "nan", nan, {1});
    f.close();
  }
  H5File f = H5File::open_read(path);
  REQUIRE_THROWS_AS(read_array<float>(f, "nothing/here"), hyscale::Error);
  REQUIRE_THROWS_WITH(read_array<float>(f, "nothing/here"),
                      Catch::Contains(path) && Catch::Contains("nothing/here"));
  // 70000 does not fit uint16: an error instead of HDF5's silent clamping.
  REQUIRE_THROWS_WITH(read_array<uint16_t>(f, "big"), Catch::Contains("big") && Catch::Contains("uint16"));
  CHECK(read_array<int64_t>(f, "big") == std::vector<int64_t>{5, 70000});
  REQUIRE_THROWS_AS(read_array<int32_t>(f, "frac"), hyscale::Error);
  REQUIRE_THROWS_AS(read_array<int32_t>(f, "nan"), hyscale::Error);
  CHECK(std::isnan(read_array<float>(f, "nan")[0]));  // NaN stays NaN in a float
}

TEST_CASE("h5: attributes round trip and report what is missing", "[data]") {
  TempDir dir;
  const std::string path = dir / "attrs.h5";
  const std::string yaml = "model:\n  depth: 8\n  name: \"sambay\"\n# ünïcödé ✓\n\ttabs\n";
  {
    H5File f = H5File::create(path);
    set_attr_int(f, "step", -1234567890123LL);
    set_attr_int(f, "replaced", 1);
    set_attr_int(f, "replaced", 2);
    set_attr_double(f, "lr", 3.0e-4);
    set_attr_string(f, "config", yaml);
    set_attr_string(f, "empty", "");
    const float w[3] = {1, 2, 3};
    write_array<float>(f, "params/w", w, {3});
    set_attr_string(f, "init", "normal(0, 0.02)", "params/w");
    set_attr_int(f, "fan_in", 3, "params");
    f.close();
  }
  H5File f = H5File::open_read(path);
  CHECK(get_attr_int(f, "step") == -1234567890123LL);
  CHECK(get_attr_int(f, "replaced") == 2);
  CHECK(get_attr_double(f, "lr") == 3.0e-4);
  CHECK(get_attr_double(f, "step") == -1234567890123.0);  // integers read as double too
  CHECK(get_attr_string(f, "config") == yaml);
  CHECK(get_attr_string(f, "empty").empty());
  CHECK(get_attr_string(f, "init", "params/w") == "normal(0, 0.02)");
  CHECK(get_attr_int(f, "fan_in", "params") == 3);
  CHECK(has_attr(f, "lr"));
  CHECK_FALSE(has_attr(f, "momentum"));
  CHECK_FALSE(has_attr(f, "init", "no/such/object"));
  REQUIRE_THROWS_WITH(get_attr_int(f, "momentum"),
                      Catch::Contains(path) && Catch::Contains("momentum"));
  REQUIRE_THROWS_WITH(get_attr_string(f, "momentum"), Catch::Contains("momentum"));
  REQUIRE_THROWS_WITH(get_attr_double(f, "x", "no/such"), Catch::Contains("no/such"));
  // Wrong type: a string is not an integer.
  REQUIRE_THROWS_WITH(get_attr_int(f, "config"), Catch::Contains("config") && Catch::Contains("integer"));
}

TEST_CASE("h5: opening bad files fails with a reason", "[data]") {
  TempDir dir;
  const std::string missing = dir / "missing.h5";
  REQUIRE_THROWS_WITH(H5File::open_read(missing),
                      Catch::Contains(missing) && Catch::Contains("does not exist"));
  const std::string garbage = dir / "garbage.h5";
  hyscale::test::write_file(garbage, std::string(4096, 'x'));
  REQUIRE_THROWS_WITH(H5File::open_read(garbage),
                      Catch::Contains(garbage) && Catch::Contains("not an HDF5 file"));
  const std::string empty = dir / "empty.h5";
  hyscale::test::write_file(empty, "");
  REQUIRE_THROWS_AS(H5File::open_read(empty), hyscale::Error);
  REQUIRE_THROWS_WITH(H5File::create(dir / "no/such/dir/x.h5"), Catch::Contains("does not exist"));
}

TEST_CASE("h5: H5File is move-only and closes cleanly", "[data]") {
  TempDir dir;
  H5File a = H5File::create(dir / "m.h5");
  const hid_t id = a.id();
  H5File b = std::move(a);
  CHECK_FALSE(a.is_open());
  CHECK(b.id() == id);
  b.flush();
  b.close();
  CHECK_FALSE(b.is_open());
  b.close();  // idempotent
  REQUIRE_THROWS_AS(set_attr_int(b, "x", 1), hyscale::Error);  // closed file: Error, not a crash
}

TEST_CASE("h5: slabs along one dimension read only those rows or columns, and shapes read without data", "[data]") {
  TempDir dir;
  const std::string path = dir / "slab.h5";
  std::vector<float> v(5 * 7);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  {
    H5File f = H5File::create(path);
    write_array<float>(f, "m", v.data(), {5, 7});
    f.close();
  }
  H5File f = H5File::open_read(path);
  CHECK(dataset_dims(f, "m") == std::vector<uint64_t>{5, 7});
  std::vector<uint64_t> dims;
  auto rows = read_array_slab<float>(f, "m", 0, 1, 2, &dims);  // rows 1..2
  CHECK(dims == std::vector<uint64_t>{5, 7});
  REQUIRE(rows.size() == 14);
  for (int i = 0; i < 14; ++i) CHECK(rows[i] == static_cast<float>(7 + i));
  auto cols = read_array_slab<float>(f, "m", 1, 2, 3);  // columns 2..4 of every row
  REQUIRE(cols.size() == 15);
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 3; ++c) CHECK(cols[r * 3 + c] == static_cast<float>(r * 7 + 2 + c));
  CHECK(read_array_slab<float>(f, "m", -1, 0, 0) == v);
  CHECK_THROWS_WITH(read_array_slab<float>(f, "m", 1, 5, 3), Catch::Contains("outside dataset"));
  CHECK_THROWS_WITH(read_array_slab<float>(f, "m", 2, 0, 1), Catch::Contains("outside dataset"));
  CHECK_THROWS_WITH(dataset_dims(f, "nope"), Catch::Contains("nope"));
}

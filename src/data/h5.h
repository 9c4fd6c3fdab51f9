// src/data/h5.h — small RAII helpers over the HDF5 C API, shared by the token
// shards (data/prepare, data/dataset) and the checkpoints (train/checkpoint).
//
// Layout conventions:
//   * Arrays are plain n-D datasets, row-major (C order), contiguous storage,
//     stored in the element type they were written with. Names may contain
//     '/' (e.g. "params/blocks.0.attn.wqkv"): intermediate groups are created.
//   * No object modification times are stored, so writing the same content
//     twice gives byte-identical files (reproducible shards and checkpoints).
//   * Scalar metadata are attributes, by default on the root group "/":
//     integers as int64, reals as float64, strings as fixed-length byte strings
//     (any content, newlines included; trailing NUL bytes are not preserved).
//
// Every HDF5 call is checked; failures throw hyscale::Error naming the file
// and the dataset/attribute, never print HDF5's own error stack, never abort.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hyscale::data {

// An open HDF5 file. Move-only; the destructor closes it (errors ignored there,
// call close() to have them reported).
class H5File {
 public:
  H5File() = default;
  ~H5File();
  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;

  // Create (truncating any existing file) for writing.
  static H5File create(const std::string& path);
  // Open read-only. A missing, non-HDF5, truncated or corrupted file throws
  // Error("cannot open HDF5 file '<path>': <reason>").
  static H5File open_read(const std::string& path);

  hid_t id() const { return id_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return id_ >= 0; }
  void flush();
  void close();

 private:
  H5File(hid_t id, std::string path) : id_(id), path_(std::move(path)) {}
  hid_t id_ = H5I_INVALID_HID;
  std::string path_;
};

// ---------------------------------------------------------------- datasets
// T is one of: float, double, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t.
// dims = {} writes a scalar (one element); zero-size dims are allowed.
template <class T>
void write_array(H5File& file, const std::string& name, const T* data,
                 const std::vector<uint64_t>& dims);

// Reads a numeric dataset, converting from its stored type to T. A value that
// does not fit T (overflow, fractional float into an integer, NaN into an
// integer) is an Error, not silently clamped.
template <class T>
std::vector<T> read_array(H5File& file, const std::string& name,
                          std::vector<uint64_t>* dims_out = nullptr);

// Rows [offset, offset + count) along dimension `dim` (every other dimension whole) of a
// numeric dataset, as read_array converts them; dims_out receives the dataset's full shape.
// dim = -1 reads everything.
template <class T>
std::vector<T> read_array_slab(H5File& file, const std::string& name, int dim, uint64_t offset, uint64_t count,
                               std::vector<uint64_t>* dims_out = nullptr);

// The shape of a dataset (no data read).
std::vector<uint64_t> dataset_dims(H5File& file, const std::string& name);

bool has_dataset(H5File& file, const std::string& name);
// All datasets below `group`, recursively, as paths relative to it, sorted.
std::vector<std::string> list_datasets(H5File& file, const std::string& group = "/");

// ---------------------------------------------------------------- attributes
// `object` is the group or dataset that carries the attribute. Setting an
// existing attribute replaces it. Getters throw Error naming file, object and
// attribute when it is missing or has the wrong type.
void set_attr_int(H5File& file, const std::string& name, int64_t value,
                  const std::string& object = "/");
void set_attr_double(H5File& file, const std::string& name, double value,
                     const std::string& object = "/");
void set_attr_string(H5File& file, const std::string& name, const std::string& value,
                     const std::string& object = "/");
int64_t get_attr_int(H5File& file, const std::string& name, const std::string& object = "/");
double get_attr_double(H5File& file, const std::string& name, const std::string& object = "/");
std::string get_attr_string(H5File& file, const std::string& name,
                            const std::string& object = "/");
bool has_attr(H5File& file, const std::string& name, const std::string& object = "/");

// ---------------------------------------------------------------- atomic commit
// Crash-safe publish of a finished file (DESIGN.md "Run directory"): fsync
// `tmp_path`, rename it onto `final_path`, fsync the directory. A crash leaves
// either the old file or the complete new one under `final_path`, never half.
void commit_file_atomically(const std::string& tmp_path, const std::string& final_path);

}  // namespace hyscale::data

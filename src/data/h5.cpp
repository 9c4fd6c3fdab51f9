// src/data/h5.cpp — RAII HDF5 helpers (see h5.h for the layout conventions).
//
// Every HDF5 call is checked. HDF5's automatic error printing is switched off
// before any call, so a bad file produces one hyscale::Error naming the file and
// the object, with the most specific line of HDF5's error stack appended.
#include "data/h5.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <type_traits>

#include "core/error.h"

namespace hyscale::data {

namespace fs = std::filesystem;

namespace {

// Turn off HDF5's automatic printing of its error stack to stderr: we report
// errors ourselves. Called on every entry point (cheap) because the setting is
// per-thread in thread-safe builds of the library.
void quiet_hdf5() {
  HS_CHECK(H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0,
           "HDF5: cannot disable automatic error printing (H5Eset_auto2 failed)");
}

herr_t innermost_error_cb(unsigned n, const H5E_error2_t* err, void* out) {
  // H5E_WALK_UPWARD starts at the most specific error (n == 0), where the
  // library first detected the problem; that line is the useful one.
  if (n == 0 && err != nullptr && err->desc != nullptr) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

// The most specific message on HDF5's current error stack (or a fallback).
// Must be called right after the failing call: later calls clear the stack.
std::string h5_detail() {
  std::string desc;
  if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error_cb, &desc) < 0 || desc.empty())
    return "HDF5 call failed";
  return "HDF5: " + desc;
}

// Owner of one HDF5 identifier (dataset, dataspace, type, property list, ...).
class Handle {
 public:
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) {
    other.id_ = H5I_INVALID_HID;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*closer_)(hid_t);
};

// The in-memory (native) type and the on-disk (explicit little-endian) type of
// each supported element type. Files are therefore identical on any host.
template <class T>
hid_t mem_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, uint8_t>) return H5T_NATIVE_UINT8;
  else if constexpr (std::is_same_v<T, uint16_t>) return H5T_NATIVE_UINT16;
  else if constexpr (std::is_same_v<T, uint32_t>) return H5T_NATIVE_UINT32;
  else if constexpr (std::is_same_v<T, uint64_t>) return H5T_NATIVE_UINT64;
  else static_assert(sizeof(T) == 0, "unsupported HDF5 element type");
}

template <class T>
hid_t file_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  else if constexpr (std::is_same_v<T, double>) return H5T_IEEE_F64LE;
  else if constexpr (std::is_same_v<T, int32_t>) return H5T_STD_I32LE;
  else if constexpr (std::is_same_v<T, int64_t>) return H5T_STD_I64LE;
  else if constexpr (std::is_same_v<T, uint8_t>) return H5T_STD_U8LE;
  else if constexpr (std::is_same_v<T, uint16_t>) return H5T_STD_U16LE;
  else if constexpr (std::is_same_v<T, uint32_t>) return H5T_STD_U32LE;
  else if constexpr (std::is_same_v<T, uint64_t>) return H5T_STD_U64LE;
  else static_assert(sizeof(T) == 0, "unsupported HDF5 element type");
}

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, int32_t>) return "int32";
  else if constexpr (std::is_same_v<T, int64_t>) return "int64";
  else if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  else if constexpr (std::is_same_v<T, uint16_t>) return "uint16";
  else if constexpr (std::is_same_v<T, uint32_t>) return "uint32";
  else return "uint64";
}

void require_open(const H5File& file, const char* op) {
  HS_CHECK(file.is_open(), op, ": HDF5 file '", file.path(), "' is not open");
}

// True when every component of `path` exists. H5Lexists fails (instead of
// returning false) when an intermediate group is missing, so walk it one
// component at a time.
bool path_exists(hid_t loc, const std::string& path) {
  if (path.empty() || path == "/" || path == ".") return true;
  std::string prefix = path[0] == '/' ? "/" : "";
  size_t pos = prefix.size();
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    if (end > pos) {
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      prefix += path.substr(pos, end - pos);
      if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    pos = end + 1;
  }
  return true;
}

// Opens the group or dataset `object`, or throws naming the file.
Handle open_object(H5File& file, const std::string& object) {
  HS_CHECK(path_exists(file.id(), object), "HDF5 file '", file.path(), "' has no object '", object,
           "'");
  Handle obj(H5Oopen(file.id(), object.c_str(), H5P_DEFAULT), H5Oclose);
  HS_CHECK(obj.ok(), "HDF5 file '", file.path(), "': cannot open object '", object, "' (",
           h5_detail(), ")");
  return obj;
}

bool is_dataset(H5File& file, const std::string& name) {
  if (name.empty() || !path_exists(file.id(), name)) return false;
  Handle obj(H5Oopen(file.id(), name.c_str(), H5P_DEFAULT), H5Oclose);
  return obj.ok() && H5Iget_type(obj.get()) == H5I_DATASET;
}

// Type-conversion exception handler for reads: a stored value that does not
// fit the requested type must fail the read instead of being clamped (HDF5's
// default), because a clamped token id or weight is silent garbage.
H5T_conv_ret_t strict_conversion(H5T_conv_except_t except, hid_t, hid_t, void*, void*,
                                 void* dst_is_float) {
  const bool to_float = *static_cast<const bool*>(dst_is_float);
  switch (except) {
    case H5T_CONV_EXCEPT_RANGE_HI:
    case H5T_CONV_EXCEPT_RANGE_LOW:
      return H5T_CONV_ABORT;
    case H5T_CONV_EXCEPT_TRUNCATE:  // fractional float into an integer
      return H5T_CONV_ABORT;
    case H5T_CONV_EXCEPT_PINF:
    case H5T_CONV_EXCEPT_NINF:
    case H5T_CONV_EXCEPT_NAN:  // inf/nan are representable in a float, not an integer
      return to_float ? H5T_CONV_UNHANDLED : H5T_CONV_ABORT;
    default:  // precision loss (e.g. int64 -> double rounding) is accepted
      return H5T_CONV_UNHANDLED;
  }
}

// Writes one scalar attribute of type `file_t` (value in `mem_t` layout),
// replacing an existing attribute of the same name.
void write_attr(H5File& file, const std::string& object, const std::string& name, hid_t file_t,
                hid_t mem_t, const void* value) {
  quiet_hdf5();
  require_open(file, "set_attr");
  Handle obj = open_object(file, object);
  const htri_t exists = H5Aexists(obj.get(), name.c_str());
  HS_CHECK(exists >= 0, "HDF5 file '", file.path(), "': cannot query attribute '", name, "' on '",
           object, "' (", h5_detail(), ")");
  if (exists > 0)
    HS_CHECK(H5Adelete(obj.get(), name.c_str()) >= 0, "HDF5 file '", file.path(),
             "': cannot replace attribute '", name, "' on '", object, "' (", h5_detail(), ")");
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  HS_CHECK(space.ok(), "HDF5: cannot create a scalar dataspace (", h5_detail(), ")");
  Handle attr(H5Acreate2(obj.get(), name.c_str(), file_t, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  HS_CHECK(attr.ok(), "HDF5 file '", file.path(), "': cannot create attribute '", name, "' on '",
           object, "' (", h5_detail(), ")");
  HS_CHECK(H5Awrite(attr.get(), mem_t, value) >= 0, "HDF5 file '", file.path(),
           "': cannot write attribute '", name, "' on '", object, "' (", h5_detail(), ")");
}

// Opens attribute `name` on `object`, checking it exists and holds one value.
Handle open_attr(H5File& file, const std::string& object, const std::string& name) {
  quiet_hdf5();
  require_open(file, "get_attr");
  Handle obj = open_object(file, object);
  const htri_t exists = H5Aexists(obj.get(), name.c_str());
  HS_CHECK(exists > 0, "HDF5 file '", file.path(), "': attribute '", name, "' is missing on '",
           object, "'");
  Handle attr(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  HS_CHECK(attr.ok(), "HDF5 file '", file.path(), "': cannot open attribute '", name, "' on '",
           object, "' (", h5_detail(), ")");
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  HS_CHECK(space.ok() && H5Sget_simple_extent_npoints(space.get()) == 1, "HDF5 file '",
           file.path(), "': attribute '", name, "' on '", object, "' is not a single value");
  return attr;
}

H5T_class_t attr_class(H5File& file, const Handle& attr, const std::string& name) {
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  HS_CHECK(type.ok(), "HDF5 file '", file.path(), "': cannot read the type of attribute '", name,
           "' (", h5_detail(), ")");
  return H5Tget_class(type.get());
}

void collect_datasets(H5File& file, hid_t group, const std::string& prefix,
                      std::vector<std::string>& out, int depth) {
  // Our files are trees; the depth bound only guards against a hand-made file
  // whose hard links form a cycle.
  HS_CHECK(depth < 64, "HDF5 file '", file.path(), "': groups nested deeper than 64 levels at '",
           prefix, "' (link cycle?)");
  H5G_info_t info;
  HS_CHECK(H5Gget_info(group, &info) >= 0, "HDF5 file '", file.path(), "': cannot list group '",
           prefix, "' (", h5_detail(), ")");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    HS_CHECK(len >= 0, "HDF5 file '", file.path(), "': cannot read link names in '", prefix,
             "' (", h5_detail(), ")");
    std::string name(static_cast<size_t>(len) + 1, '\0');
    HS_CHECK(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                                name.size(), H5P_DEFAULT) >= 0,
             "HDF5 file '", file.path(), "': cannot read link names in '", prefix, "' (",
             h5_detail(), ")");
    name.resize(static_cast<size_t>(len));
    Handle obj(H5Oopen(group, name.c_str(), H5P_DEFAULT), H5Oclose);
    HS_CHECK(obj.ok(), "HDF5 file '", file.path(), "': cannot open '", prefix + name, "' (",
             h5_detail(), ")");
    const H5I_type_t type = H5Iget_type(obj.get());
    if (type == H5I_DATASET) out.push_back(prefix + name);
    else if (type == H5I_GROUP) collect_datasets(file, obj.get(), prefix + name + "/", out, depth + 1);
  }
}

}  // namespace

// ---------------------------------------------------------------- H5File

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

H5File::H5File(H5File&& other) noexcept : id_(other.id_), path_(std::move(other.path_)) {
  other.id_ = H5I_INVALID_HID;
}

H5File& H5File::operator=(H5File&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) H5Fclose(id_);
    id_ = other.id_;
    path_ = std::move(other.path_);
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

H5File H5File::create(const std::string& path) {
  quiet_hdf5();
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  HS_CHECK(parent.empty() || fs::is_directory(parent, ec), "cannot create HDF5 file '", path,
           "': directory '", parent.string(), "' does not exist");
  // No modification times in object headers (root group, and through it the
  // intermediate groups): the same content gives byte-identical files, so a
  // rerun with the same seed reproduces shards and checkpoints exactly.
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  HS_CHECK(fcpl.ok() && H5Pset_obj_track_times(fcpl.get(), 0) >= 0,
           "cannot create HDF5 file '", path, "': file-creation property list failed (",
           h5_detail(), ")");
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT);
  HS_CHECK(id >= 0, "cannot create HDF5 file '", path, "': ", h5_detail());
  return H5File(id, path);
}

H5File H5File::open_read(const std::string& path) {
  quiet_hdf5();
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  HS_CHECK(fs::exists(st), "cannot open HDF5 file '", path, "': file does not exist");
  HS_CHECK(!fs::is_directory(st), "cannot open HDF5 file '", path,
           "': it is a directory, expected a file");
  {
    std::ifstream probe(path, std::ios::binary);
    HS_CHECK(probe.good(), "cannot open HDF5 file '", path, "': file is not readable (",
             std::strerror(errno), ")");
  }
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    const std::string detail = h5_detail();  // before the next call clears the stack
    // Tell "wrong file" from "our file, damaged": only the latter has the
    // HDF5 signature but still fails to open (e.g. the superblock records a
    // larger end-of-file than is on disk after a truncated copy).
#if H5_VERSION_GE(1, 12, 0)
    const htri_t signature = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
    const htri_t signature = H5Fis_hdf5(path.c_str());
#endif
    HS_CHECK(signature > 0, "cannot open HDF5 file '", path,
             "': not an HDF5 file (no HDF5 signature; wrong file or garbage)");
    HS_FAIL("cannot open HDF5 file '", path, "': file is truncated or corrupted (", detail, ")");
  }
  return H5File(id, path);
}

void H5File::flush() {
  require_open(*this, "flush");
  HS_CHECK(H5Fflush(id_, H5F_SCOPE_LOCAL) >= 0, "cannot flush HDF5 file '", path_, "' (",
           h5_detail(), ")");
}

void H5File::close() {
  if (id_ < 0) return;
  const herr_t rc = H5Fclose(id_);
  id_ = H5I_INVALID_HID;
  HS_CHECK(rc >= 0, "cannot close HDF5 file '", path_, "' (data may be incomplete): ", h5_detail());
}

// ---------------------------------------------------------------- datasets

template <class T>
void write_array(H5File& file, const std::string& name, const T* data,
                 const std::vector<uint64_t>& dims) {
  quiet_hdf5();
  require_open(file, "write_array");
  HS_CHECK(!name.empty() && name != "/", "write_array: empty dataset name for HDF5 file '",
           file.path(), "'");
  HS_CHECK(!path_exists(file.id(), name), "HDF5 file '", file.path(), "': dataset '", name,
           "' already exists");
  uint64_t count = 1;
  for (uint64_t d : dims) count *= d;
  HS_CHECK(count == 0 || data != nullptr, "write_array: null data for dataset '", name,
           "' in HDF5 file '", file.path(), "'");

  std::vector<hsize_t> hdims(dims.begin(), dims.end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(hdims.size()), hdims.data(), nullptr),
               H5Sclose);
  HS_CHECK(space.ok(), "HDF5 file '", file.path(), "': cannot create dataspace for '", name,
           "' (", h5_detail(), ")");
  // Names like "params/blocks.0.attn.wqkv" create their groups on the way.
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  HS_CHECK(lcpl.ok() && H5Pset_create_intermediate_group(lcpl.get(), 1) >= 0,
           "HDF5: cannot set up a link-creation property list (", h5_detail(), ")");
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  HS_CHECK(dcpl.ok() && H5Pset_obj_track_times(dcpl.get(), 0) >= 0,
           "HDF5: cannot set up a dataset-creation property list (", h5_detail(), ")");
  Handle ds(H5Dcreate2(file.id(), name.c_str(), file_type<T>(), space.get(), lcpl.get(),
                       dcpl.get(), H5P_DEFAULT),
            H5Dclose);
  HS_CHECK(ds.ok(), "HDF5 file '", file.path(), "': cannot create dataset '", name, "' (",
           h5_detail(), ")");
  if (count > 0)
    HS_CHECK(H5Dwrite(ds.get(), mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
             "HDF5 file '", file.path(), "': cannot write dataset '", name, "' (", h5_detail(),
             ")");
}

template <class T>
std::vector<T> read_array(H5File& file, const std::string& name, std::vector<uint64_t>* dims_out) {
  return read_array_slab<T>(file, name, -1, 0, 0, dims_out);
}

template <class T>
std::vector<T> read_array_slab(H5File& file, const std::string& name, int dim, uint64_t offset, uint64_t count,
                               std::vector<uint64_t>* dims_out) {
  quiet_hdf5();
  require_open(file, "read_array");
  HS_CHECK(is_dataset(file, name), "HDF5 file '", file.path(), "' has no dataset '", name, "'");
  Handle ds(H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  HS_CHECK(ds.ok(), "HDF5 file '", file.path(), "': cannot open dataset '", name, "' (",
           h5_detail(), ")");

  Handle ftype(H5Dget_type(ds.get()), H5Tclose);
  HS_CHECK(ftype.ok(), "HDF5 file '", file.path(), "': cannot read the type of dataset '", name,
           "' (", h5_detail(), ")");
  const H5T_class_t cls = H5Tget_class(ftype.get());
  HS_CHECK(cls == H5T_INTEGER || cls == H5T_FLOAT, "HDF5 file '", file.path(), "': dataset '",
           name, "' is not a numeric array (expected integer or float elements)");

  Handle space(H5Dget_space(ds.get()), H5Sclose);
  HS_CHECK(space.ok(), "HDF5 file '", file.path(), "': cannot read the shape of dataset '", name,
           "' (", h5_detail(), ")");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  HS_CHECK(rank >= 0, "HDF5 file '", file.path(), "': bad shape for dataset '", name, "' (",
           h5_detail(), ")");
  std::vector<hsize_t> hdims(static_cast<size_t>(rank));
  if (rank > 0)
    HS_CHECK(H5Sget_simple_extent_dims(space.get(), hdims.data(), nullptr) == rank, "HDF5 file '",
             file.path(), "': bad shape for dataset '", name, "' (", h5_detail(), ")");
  const hssize_t npoints = H5Sget_simple_extent_npoints(space.get());
  HS_CHECK(npoints >= 0, "HDF5 file '", file.path(), "': bad size for dataset '", name, "' (",
           h5_detail(), ")");

  // A slab: rows [offset, offset + count) along `dim`, every other dimension whole.
  std::vector<hsize_t> start(static_cast<size_t>(rank), 0), cnt = hdims;
  hssize_t nread = npoints;
  if (dim >= 0) {
    HS_CHECK(dim < rank && offset + count <= hdims[static_cast<size_t>(dim)], "HDF5 file '", file.path(),
             "': slab [", offset, ", ", offset + count, ") along dimension ", dim, " is outside dataset '", name,
             "' of ", rank, " dimensions");
    start[static_cast<size_t>(dim)] = offset;
    cnt[static_cast<size_t>(dim)] = count;
    HS_CHECK(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr) >= 0,
             "HDF5 file '", file.path(), "': cannot select a slab of dataset '", name, "' (", h5_detail(), ")");
    nread = 1;
    for (hsize_t c : cnt) nread *= static_cast<hssize_t>(c);
  }
  Handle mspace(dim >= 0 ? H5Screate_simple(rank, cnt.data(), nullptr) : H5I_INVALID_HID, H5Sclose);
  HS_CHECK(dim < 0 || mspace.ok(), "HDF5: cannot create a memory space (", h5_detail(), ")");
  const hid_t mem_space = dim >= 0 ? mspace.get() : H5S_ALL, file_space = dim >= 0 ? space.get() : H5S_ALL;
  std::vector<T> out(static_cast<size_t>(nread));
  if (nread > 0) {
    bool to_float = std::is_floating_point_v<T>;
    Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
    HS_CHECK(dxpl.ok() && H5Pset_type_conv_cb(dxpl.get(), strict_conversion, &to_float) >= 0,
             "HDF5: cannot set up a transfer property list (", h5_detail(), ")");
    HS_CHECK(H5Dread(ds.get(), mem_type<T>(), mem_space, file_space, dxpl.get(), out.data()) >= 0,
             "HDF5 file '", file.path(), "': cannot read dataset '", name, "' as ",
             type_name<T>(), " (corrupted data, or a stored value out of range for ",
             type_name<T>(), "; ", h5_detail(), ")");
  }
  if (dims_out != nullptr) dims_out->assign(hdims.begin(), hdims.end());
  return out;
}

std::vector<uint64_t> dataset_dims(H5File& file, const std::string& name) {
  quiet_hdf5();
  require_open(file, "dataset_dims");
  HS_CHECK(is_dataset(file, name), "HDF5 file '", file.path(), "' has no dataset '", name, "'");
  Handle ds(H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  HS_CHECK(ds.ok(), "HDF5 file '", file.path(), "': cannot open dataset '", name, "' (", h5_detail(), ")");
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  HS_CHECK(rank >= 0, "HDF5 file '", file.path(), "': bad shape for dataset '", name, "' (", h5_detail(), ")");
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  if (rank > 0)
    HS_CHECK(H5Sget_simple_extent_dims(space.get(), d.data(), nullptr) == rank, "HDF5 file '", file.path(),
             "': bad shape for dataset '", name, "' (", h5_detail(), ")");
  return std::vector<uint64_t>(d.begin(), d.end());
}

bool has_dataset(H5File& file, const std::string& name) {
  quiet_hdf5();
  require_open(file, "has_dataset");
  return is_dataset(file, name);
}

std::vector<std::string> list_datasets(H5File& file, const std::string& group) {
  quiet_hdf5();
  require_open(file, "list_datasets");
  Handle obj = open_object(file, group.empty() ? "/" : group);
  HS_CHECK(H5Iget_type(obj.get()) == H5I_GROUP, "HDF5 file '", file.path(), "': '", group,
           "' is not a group");
  std::vector<std::string> out;
  collect_datasets(file, obj.get(), "", out, 0);
  std::sort(out.begin(), out.end());
  return out;
}

// Explicit instantiations: the supported element types.
#define HS_H5_INSTANTIATE(T)                                                                   \
  template void write_array<T>(H5File&, const std::string&, const T*,                         \
                               const std::vector<uint64_t>&);                                 \
  template std::vector<T> read_array<T>(H5File&, const std::string&, std::vector<uint64_t>*);                   \
  template std::vector<T> read_array_slab<T>(H5File&, const std::string&, int, uint64_t, uint64_t,              \
                                             std::vector<uint64_t>*);
HS_H5_INSTANTIATE(float)
HS_H5_INSTANTIATE(double)
HS_H5_INSTANTIATE(int32_t)
HS_H5_INSTANTIATE(int64_t)
HS_H5_INSTANTIATE(uint8_t)
HS_H5_INSTANTIATE(uint16_t)
HS_H5_INSTANTIATE(uint32_t)
HS_H5_INSTANTIATE(uint64_t)
#undef HS_H5_INSTANTIATE

// ---------------------------------------------------------------- attributes

void set_attr_int(H5File& file, const std::string& name, int64_t value, const std::string& object) {
  write_attr(file, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void set_attr_double(H5File& file, const std::string& name, double value,
                     const std::string& object) {
  write_attr(file, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void set_attr_string(H5File& file, const std::string& name, const std::string& value,
                     const std::string& object) {
  // Fixed-length, NUL-padded: the exact bytes are stored (HDF5 forbids size 0,
  // so "" is stored as one pad byte), and h5dump/h5py show it as text.
  quiet_hdf5();
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  HS_CHECK(type.ok() && H5Tset_size(type.get(), std::max<size_t>(1, value.size())) >= 0 &&
               H5Tset_strpad(type.get(), H5T_STR_NULLPAD) >= 0 &&
               H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0,
           "HDF5: cannot build a string type for attribute '", name, "' (", h5_detail(), ")");
  std::string padded = value;
  if (padded.empty()) padded.push_back('\0');
  write_attr(file, object, name, type.get(), type.get(), padded.data());
}

int64_t get_attr_int(H5File& file, const std::string& name, const std::string& object) {
  Handle attr = open_attr(file, object, name);
  HS_CHECK(attr_class(file, attr, name) == H5T_INTEGER, "HDF5 file '", file.path(),
           "': attribute '", name, "' on '", object, "' is not an integer");
  int64_t value = 0;
  HS_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &value) >= 0, "HDF5 file '", file.path(),
           "': cannot read attribute '", name, "' on '", object, "' as int64 (", h5_detail(), ")");
  return value;
}

double get_attr_double(H5File& file, const std::string& name, const std::string& object) {
  Handle attr = open_attr(file, object, name);
  const H5T_class_t cls = attr_class(file, attr, name);
  HS_CHECK(cls == H5T_FLOAT || cls == H5T_INTEGER, "HDF5 file '", file.path(), "': attribute '",
           name, "' on '", object, "' is not a number");
  double value = 0;
  HS_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value) >= 0, "HDF5 file '", file.path(),
           "': cannot read attribute '", name, "' on '", object, "' as float64 (", h5_detail(),
           ")");
  return value;
}

std::string get_attr_string(H5File& file, const std::string& name, const std::string& object) {
  Handle attr = open_attr(file, object, name);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  HS_CHECK(type.ok() && H5Tget_class(type.get()) == H5T_STRING, "HDF5 file '", file.path(),
           "': attribute '", name, "' on '", object, "' is not a string");
  // Read with the stored type itself (same size, padding and character set),
  // so no string conversion happens; also accepts variable-length strings as
  // written by h5py.
  Handle mem(H5Tcopy(type.get()), H5Tclose);
  HS_CHECK(mem.ok(), "HDF5: cannot copy string type (", h5_detail(), ")");
  const htri_t is_vlen = H5Tis_variable_str(type.get());
  HS_CHECK(is_vlen >= 0, "HDF5 file '", file.path(), "': bad string type for attribute '", name,
           "' (", h5_detail(), ")");
  if (is_vlen > 0) {
    char* raw = nullptr;
    HS_CHECK(H5Aread(attr.get(), mem.get(), &raw) >= 0, "HDF5 file '", file.path(),
             "': cannot read string attribute '", name, "' on '", object, "' (", h5_detail(), ")");
    std::string value = raw != nullptr ? std::string(raw) : std::string();
    H5free_memory(raw);
    return value;
  }
  const size_t size = H5Tget_size(type.get());
  HS_CHECK(size > 0, "HDF5 file '", file.path(), "': bad string size for attribute '", name, "'");
  std::string value(size, '\0');
  HS_CHECK(H5Aread(attr.get(), mem.get(), value.data()) >= 0, "HDF5 file '", file.path(),
           "': cannot read string attribute '", name, "' on '", object, "' (", h5_detail(), ")");
  switch (H5Tget_strpad(type.get())) {
    case H5T_STR_NULLTERM:  // C string: content ends at the first NUL
      value.resize(std::strlen(value.c_str()));
      break;
    case H5T_STR_SPACEPAD:  // Fortran string: trailing blanks are padding
      while (!value.empty() && value.back() == ' ') value.pop_back();
      break;
    default:  // NUL-padded: trailing NULs are padding
      while (!value.empty() && value.back() == '\0') value.pop_back();
      break;
  }
  return value;
}

bool has_attr(H5File& file, const std::string& name, const std::string& object) {
  quiet_hdf5();
  require_open(file, "has_attr");
  if (!path_exists(file.id(), object)) return false;
  Handle obj(H5Oopen(file.id(), object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) return false;
  return H5Aexists(obj.get(), name.c_str()) > 0;
}

// ---------------------------------------------------------------- atomic commit

void commit_file_atomically(const std::string& tmp_path, const std::string& final_path) {
  // 1. The data must be on disk before the rename makes it visible.
  const int fd = ::open(tmp_path.c_str(), O_RDONLY);
  HS_CHECK(fd >= 0, "cannot open '", tmp_path, "' to sync it: ", std::strerror(errno));
  const int sync_rc = ::fsync(fd);
  const int sync_errno = errno;
  ::close(fd);
  HS_CHECK(sync_rc == 0, "cannot fsync '", tmp_path, "': ", std::strerror(sync_errno));
  // 2. rename() is atomic within one file system.
  HS_CHECK(std::rename(tmp_path.c_str(), final_path.c_str()) == 0, "cannot rename '", tmp_path,
           "' to '", final_path, "': ", std::strerror(errno));
  // 3. Persist the directory entry too. Some file systems cannot fsync a
  //    directory; the rename itself has already happened, so that is not fatal.
  std::string dir = fs::path(final_path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace hyscale::data

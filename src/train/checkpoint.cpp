#include "train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "data/h5.h"

namespace fs = std::filesystem;

namespace hyscale::train {

namespace {
// 2: tensors under logical names (fused projections per part), layout attributes.
constexpr int64_t kFormatVersion = 2;

std::string step_file(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%07lld.h5", static_cast<long long>(step));
  return buf;
}

std::vector<uint64_t> dims_of(const Tensor& t) {
  std::vector<uint64_t> d;
  for (int64_t s : t.shape()) d.push_back(static_cast<uint64_t>(s));
  return d;
}

// step_XXXXXXX.h5 files of a checkpoint directory, sorted by step number (not by name:
// names stop sorting correctly past 7 digits).
std::vector<std::pair<int64_t, fs::path>> list_step_files(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() < 9 || n.rfind("step_", 0) != 0 || n.substr(n.size() - 3) != ".h5") continue;
    const std::string digits = n.substr(5, n.size() - 8);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) continue;
    out.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_complete(const std::string& path) {
  try {
    auto f = data::H5File::open_read(path);
    return data::has_attr(f, "complete") && data::get_attr_int(f, "complete") == 1;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

namespace {

struct Target {
  std::string name;
  Tensor local;
  nn::ShardSpec spec;
};

// This rank's slice of a logical tensor, read from `f` as an HDF5 slab (only its rows/columns
// are read), after checking the stored global shape.
Tensor read_slice(data::H5File& f, const std::string& path, const std::string& key, const nn::LogicalSlice& sl) {
  HS_CHECK(data::has_dataset(f, key), "checkpoint '", path, "': missing tensor '", key, "'");
  const bool slab = sl.dim >= 0;
  // Shape first (a mis-shaped tensor must not be sliced), then only this rank's slab.
  const std::vector<uint64_t> dims = data::dataset_dims(f, key);
  HS_CHECK(Shape(dims.begin(), dims.end()) == sl.global_shape, "checkpoint '", path, "': tensor '", key,
           "' has shape ", shape_str(Shape(dims.begin(), dims.end())), " but the model expects ",
           shape_str(sl.global_shape));
  Shape local = sl.global_shape;
  if (slab) local[static_cast<size_t>(sl.dim)] = sl.count;
  auto data = slab ? data::read_array_slab<float>(f, key, sl.dim, static_cast<uint64_t>(sl.global_offset),
                                                  static_cast<uint64_t>(sl.count))
                   : data::read_array<float>(f, key);
  Tensor out = Tensor::empty(local);
  std::copy(data.begin(), data.end(), out.data<float>());
  return out;
}

// Stages every requested tensor of `targets` (kinds: 0 params, 1 exp_avg, 2 exp_avg_sq) as
// this rank's local tensors; throws before anything is modified.
std::vector<std::vector<Tensor>> stage(data::H5File& f, const std::string& path, const std::vector<Target>& targets,
                                       int nkinds, int tp, int tp_rank) {
  static const char* prefix[3] = {"params/", "optim/exp_avg/", "optim/exp_avg_sq/"};
  std::vector<std::vector<Tensor>> out(static_cast<size_t>(nkinds));
  std::vector<std::string> known;
  for (const auto& t : targets) {
    const auto slices = nn::logical_slices(t.name, t.local.shape(), t.spec, tp, tp_rank);
    for (auto& sl : slices) known.push_back(sl.name);
    for (int k = 0; k < nkinds; ++k) {
      Tensor local = Tensor::empty(t.local.shape());
      for (auto& sl : slices) {
        Tensor part = read_slice(f, path, prefix[k] + sl.name, sl);
        if (sl.dim < 0)
          local.copy_from(part);
        else
          local.slice(sl.dim, sl.local_offset, sl.local_offset + sl.count).copy_from(part);
      }
      out[static_cast<size_t>(k)].push_back(local);
    }
  }
  // A tensor the model lacks means the checkpoint is of another model (e.g. untied vs tied).
  std::sort(known.begin(), known.end());
  for (auto& name : data::list_datasets(f, "params"))
    HS_CHECK(std::binary_search(known.begin(), known.end(), name), "checkpoint '", path, "' has tensor 'params/",
             name, "' that this model does not have (different model config?)");
  return out;
}

data::H5File open_checked(const std::string& path) {
  auto f = data::H5File::open_read(path);
  HS_CHECK(data::has_attr(f, "complete") && data::get_attr_int(f, "complete") == 1, "checkpoint '", path,
           "' is incomplete (a save was interrupted); use an earlier checkpoint");
  const int64_t ver = data::get_attr_int(f, "format_version");
  HS_CHECK(ver == kFormatVersion, "checkpoint '", path, "' has format_version ", ver, " (this build reads ",
           kFormatVersion, ")");
  return f;
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, DistributedAdamW& opt, const parallel::Grid& grid,
                            const TrainState& st, const std::string& config_yaml, int64_t keep_last) {
  const bool writer = grid.rank == 0;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  const fs::path final_path = dir / step_file(st.step);
  const std::string tmp = final_path.string() + ".tmp";
  std::optional<data::H5File> f;
  if (writer) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    HS_CHECK(!ec, "cannot create checkpoint directory '", dir.string(), "': ", ec.message());
    f.emplace(data::H5File::create(tmp));
  }
  static const char* prefix[3] = {"params/", "optim/exp_avg/", "optim/exp_avg_sq/"};
  for (size_t i = 0; i < opt.params().size(); ++i) {
    const DistParam& dp = opt.params()[i];
    for (int k = 0; k < 3; ++k) {
      // Under ZeRO-1 moment() is a dp collective: every rank takes part, in this order.
      const Tensor src = (k == 0 ? dp.p : opt.moment(i, k - 1)).detach();
      if (grid.dp_rank != 0) continue;  // the first data-parallel replica writes (no host copy elsewhere)
      Tensor local = src.to(Device::cpu());
      for (const auto& sl : nn::logical_slices(dp.name, local.shape(), dp.spec, grid.tp, grid.tp_rank)) {
        Tensor full;
        if (sl.dim < 0) {
          full = local;
        } else {
          Tensor mine = local.slice(sl.dim, sl.local_offset, sl.local_offset + sl.count).contiguous();
          Tensor all = Tensor::empty({grid.tp, mine.numel()});
          grid.tp_comm->allgather(mine.data<float>(), all.data<float>(), mine.numel(), DType::f32);
          if (!writer) continue;
          full = Tensor::empty(sl.global_shape);
          for (int r = 0; r < grid.tp; ++r) {
            Tensor chunk = all.slice(0, r, r + 1).reshape(mine.shape());
            full.slice(sl.dim, r * sl.count, (r + 1) * sl.count).copy_from(chunk);
          }
        }
        if (writer) data::write_array<float>(*f, prefix[k] + sl.name, full.contiguous().data<float>(), dims_of(full));
      }
    }
  }
  opt.drop_gathered();
  if (!writer) return "";
  data::write_array<uint64_t>(*f, "rng_state", st.rng.data(), {4});
  data::set_attr_int(*f, "format_version", kFormatVersion);
  data::set_attr_int(*f, "step", st.step);
  data::set_attr_int(*f, "tokens_seen", st.tokens_seen);
  data::set_attr_int(*f, "optimizer_step", opt.step_count());
  data::set_attr_int(*f, "sampler_seed", static_cast<int64_t>(st.sampler.seed));
  data::set_attr_int(*f, "sampler_epoch", st.sampler.epoch);
  data::set_attr_int(*f, "sampler_cursor", st.sampler.cursor);
  data::set_attr_int(*f, "layout_tp", grid.tp);
  data::set_attr_int(*f, "layout_dp", grid.dp);
  data::set_attr_int(*f, "layout_zero", opt.zero() ? 1 : 0);
  data::set_attr_string(*f, "config", config_yaml);
  data::set_attr_int(*f, "complete", 1);
  f->flush();
  f->close();
  data::commit_file_atomically(tmp, final_path.string());

  // Point `latest` at it (same temp + rename discipline).
  const fs::path latest = dir / "latest";
  {
    std::ofstream out(latest.string() + ".tmp", std::ios::trunc);
    out << final_path.filename().string() << "\n";
    out.flush();
    HS_CHECK(out.good(), "cannot write '", latest.string(), ".tmp'");
  }
  data::commit_file_atomically(latest.string() + ".tmp", latest.string());

  // Keep the newest keep_last checkpoints (never the one just written); drop leftovers of
  // interrupted writes.
  std::error_code ec;
  auto files = list_step_files(dir);
  int64_t kept = 0;
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    if (it->second == final_path || kept < keep_last) {
      ++kept;
      continue;
    }
    fs::remove(it->second, ec);
  }
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && n.size() > 7 && n.substr(n.size() - 7) == ".h5.tmp") fs::remove(e.path(), ec);
  }
  return final_path.string();
}

TrainState load_checkpoint(const std::string& path, DistributedAdamW& opt, const parallel::Grid& grid,
                           bool load_moments) {
  auto f = open_checked(path);
  std::vector<Target> targets;
  for (auto& dp : opt.params()) targets.push_back(Target{dp.name, dp.p, dp.spec});
  auto staged = stage(f, path, targets, load_moments ? 3 : 1, grid.tp, grid.tp_rank);
  TrainState st;
  st.step = data::get_attr_int(f, "step");
  st.tokens_seen = data::get_attr_int(f, "tokens_seen");
  st.sampler.seed = static_cast<uint64_t>(data::get_attr_int(f, "sampler_seed"));
  st.sampler.epoch = data::get_attr_int(f, "sampler_epoch");
  st.sampler.cursor = data::get_attr_int(f, "sampler_cursor");
  std::vector<uint64_t> dims;
  auto rng = data::read_array<uint64_t>(f, "rng_state", &dims);
  HS_CHECK(rng.size() == 4, "checkpoint '", path, "': rng_state must hold 4 values");
  std::copy(rng.begin(), rng.end(), st.rng.begin());
  const int64_t opt_step = data::get_attr_int(f, "optimizer_step");
  // Everything checked: commit.
  for (size_t i = 0; i < targets.size(); ++i) {
    Tensor(targets[i].local).copy_from(staged[0][i]);
    if (load_moments) {
      opt.set_moment(i, 0, staged[1][i]);
      opt.set_moment(i, 1, staged[2][i]);
    }
  }
  if (load_moments) opt.set_step_count(opt_step);
  return st;
}

void load_checkpoint_params(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& params,
                            const std::vector<std::pair<std::string, nn::ShardSpec>>& specs, int tp_size,
                            int tp_rank) {
  HS_CHECK(params.size() == specs.size(), "load_checkpoint_params: parameters and shard specs differ in number");
  auto f = open_checked(path);
  std::vector<Target> targets;
  for (size_t i = 0; i < params.size(); ++i) targets.push_back(Target{params[i].first, params[i].second, specs[i].second});
  auto staged = stage(f, path, targets, 1, tp_size, tp_rank);
  for (size_t i = 0; i < targets.size(); ++i) Tensor(targets[i].local).copy_from(staged[0][i]);
}

std::string checkpoint_config(const std::string& path) {
  auto f = data::H5File::open_read(path);
  return data::get_attr_string(f, "config");
}

std::optional<std::string> find_latest_checkpoint(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return std::nullopt;
  std::ifstream in((dir / "latest").string());
  std::string name;
  if (in && std::getline(in, name) && !name.empty()) {
    const fs::path p = dir / name;
    if (fs::exists(p) && is_complete(p.string())) return p.string();
  }
  auto files = list_step_files(dir);
  for (auto it = files.rbegin(); it != files.rend(); ++it)
    if (is_complete(it->second.string())) return it->second.string();
  return std::nullopt;
}

std::vector<std::string> set_aside_newer_checkpoints(const std::string& run_dir, int64_t step) {
  std::vector<std::string> moved;
  for (auto& [s, p] : list_step_files(fs::path(run_dir) / "checkpoints")) {
    if (s <= step) continue;
    const std::string to = p.string() + ".stale";
    std::error_code ec;
    fs::rename(p, to, ec);
    HS_CHECK(!ec, "cannot move '", p.string(), "' aside to '", to, "': ", ec.message());
    moved.push_back(to);
  }
  return moved;
}

}  // namespace hyscale::train

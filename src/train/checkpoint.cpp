#include "train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/h5.h"

namespace fs = std::filesystem;

namespace hyscale::train {

namespace {
constexpr int64_t kFormatVersion = 1;

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

std::string save_checkpoint(const std::string& run_dir, const AdamW& opt_in, const TrainState& st,
                            const std::string& config_yaml, int64_t keep_last) {
  auto& opt = const_cast<AdamW&>(opt_in);  // moments are read, not modified
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  fs::create_directories(dir, ec);
  HS_CHECK(!ec, "cannot create checkpoint directory '", dir.string(), "': ", ec.message());
  const fs::path final_path = dir / step_file(st.step);
  const std::string tmp = final_path.string() + ".tmp";
  {
    auto f = data::H5File::create(tmp);
    for (size_t i = 0; i < opt.params().size(); ++i) {
      const auto& [name, p] = opt.params()[i];
      data::write_array<float>(f, "params/" + name, p.data<float>(), dims_of(p));
      data::write_array<float>(f, "optim/exp_avg/" + name, opt.exp_avg(i).data<float>(), dims_of(p));
      data::write_array<float>(f, "optim/exp_avg_sq/" + name, opt.exp_avg_sq(i).data<float>(), dims_of(p));
    }
    data::write_array<uint64_t>(f, "rng_state", st.rng.data(), {4});
    data::set_attr_int(f, "format_version", kFormatVersion);
    data::set_attr_int(f, "step", st.step);
    data::set_attr_int(f, "tokens_seen", st.tokens_seen);
    data::set_attr_int(f, "optimizer_step", opt.step_count());
    data::set_attr_int(f, "sampler_seed", static_cast<int64_t>(st.sampler.seed));
    data::set_attr_int(f, "sampler_epoch", st.sampler.epoch);
    data::set_attr_int(f, "sampler_cursor", st.sampler.cursor);
    data::set_attr_string(f, "config", config_yaml);
    data::set_attr_int(f, "complete", 1);
    f.flush();
    f.close();
  }
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

TrainState load_checkpoint(const std::string& path, AdamW& opt, bool load_moments) {
  auto f = data::H5File::open_read(path);
  HS_CHECK(data::has_attr(f, "complete") && data::get_attr_int(f, "complete") == 1, "checkpoint '", path,
           "' is incomplete (a save was interrupted); use an earlier checkpoint");
  const int64_t ver = data::get_attr_int(f, "format_version");
  HS_CHECK(ver == kFormatVersion, "checkpoint '", path, "' has format_version ", ver, " (this build reads ",
           kFormatVersion, ")");
  // Read and check every tensor before touching the model, so a bad file changes nothing.
  std::vector<std::string> prefixes{"params/"};
  if (load_moments) prefixes = {"params/", "optim/exp_avg/", "optim/exp_avg_sq/"};
  std::vector<std::vector<float>> staged;
  for (auto& [name, p] : opt.params()) {
    for (auto& prefix : prefixes) {
      const std::string key = prefix + name;
      HS_CHECK(data::has_dataset(f, key), "checkpoint '", path, "': missing tensor '", key, "'");
      std::vector<uint64_t> dims;
      staged.push_back(data::read_array<float>(f, key, &dims));
      HS_CHECK(dims == dims_of(p), "checkpoint '", path, "': tensor '", key, "' has shape ",
               shape_str(Shape(dims.begin(), dims.end())), " but the model expects ", shape_str(p.shape()));
    }
  }
  // A tensor the model lacks means the checkpoint is of another model (e.g. untied vs tied).
  for (auto& name : data::list_datasets(f, "params")) {
    bool known = false;
    for (auto& [pn, p] : opt.params()) known = known || pn == name;
    HS_CHECK(known, "checkpoint '", path, "' has tensor 'params/", name,
             "' that this model does not have (different model config?)");
  }
  size_t k = 0;
  for (size_t i = 0; i < opt.params().size(); ++i) {
    Tensor dsts[3] = {opt.params()[i].second, opt.exp_avg(i), opt.exp_avg_sq(i)};
    for (size_t j = 0; j < prefixes.size(); ++j, ++k) std::copy(staged[k].begin(), staged[k].end(), dsts[j].data<float>());
  }
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
  if (load_moments) opt.set_step_count(data::get_attr_int(f, "optimizer_step"));
  return st;
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

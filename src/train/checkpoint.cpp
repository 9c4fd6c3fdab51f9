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

bool is_complete(const std::string& path) {
  try {
    auto f = data::H5File::open_read(path);
    return data::has_attr(f, "complete") && data::get_attr_int(f, "complete") == 1;
  } catch (const Error&) {
    return false;
  }
}

void read_into(data::H5File& f, const std::string& name, Tensor& dst) {
  HS_CHECK(data::has_dataset(f, name), "checkpoint '", f.path(), "': missing tensor '", name, "'");
  std::vector<uint64_t> dims;
  auto v = data::read_array<float>(f, name, &dims);
  HS_CHECK(dims == dims_of(dst), "checkpoint '", f.path(), "': tensor '", name, "' has shape ",
           shape_str(Shape(dims.begin(), dims.end())), " but the model expects ", shape_str(dst.shape()));
  std::copy(v.begin(), v.end(), dst.data<float>());
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

  // Keep the newest keep_last checkpoints.
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && e.path().extension() == ".h5") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < files.size(); ++i) fs::remove(files[i], ec);
  return final_path.string();
}

TrainState load_checkpoint(const std::string& path, AdamW& opt, bool load_moments) {
  auto f = data::H5File::open_read(path);
  HS_CHECK(data::has_attr(f, "complete") && data::get_attr_int(f, "complete") == 1, "checkpoint '", path,
           "' is incomplete (a save was interrupted); use an earlier checkpoint");
  const int64_t ver = data::get_attr_int(f, "format_version");
  HS_CHECK(ver == kFormatVersion, "checkpoint '", path, "' has format_version ", ver, " (this build reads ",
           kFormatVersion, ")");
  // Check every tensor before touching the model, so a bad file changes nothing.
  for (auto& [name, p] : opt.params()) {
    for (std::string prefix : {"params/", "optim/exp_avg/", "optim/exp_avg_sq/"}) {
      if (!load_moments && prefix != "params/") continue;
      HS_CHECK(data::has_dataset(f, prefix + name), "checkpoint '", path, "': missing tensor '", prefix + name, "'");
    }
  }
  for (size_t i = 0; i < opt.params().size(); ++i) {
    const auto& [name, p] = opt.params()[i];
    Tensor dst = p;
    read_into(f, "params/" + name, dst);
    if (load_moments) {
      read_into(f, "optim/exp_avg/" + name, opt.exp_avg(i));
      read_into(f, "optim/exp_avg_sq/" + name, opt.exp_avg_sq(i));
    }
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
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && e.path().extension() == ".h5") files.push_back(e.path());
  }
  std::sort(files.rbegin(), files.rend());
  for (auto& p : files)
    if (is_complete(p.string())) return p.string();
  return std::nullopt;
}

}  // namespace hyscale::train

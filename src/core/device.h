// Devices: "cpu" and "cuda:N". The CUDA backend lives behind this abstraction
// (src/core/cuda/); a build without CUDA reports a clear error when asked for one.
#pragma once
#include <string>

namespace hyscale {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i) { return {DeviceType::CUDA, i}; }
  // Parses "cpu", "cuda" (= cuda:0) and "cuda:N"; throws hyscale::Error otherwise.
  static Device parse(const std::string& s);
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  bool operator==(const Device& o) const { return type == o.type && (is_cpu() || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// Backend queries (device.cpp; CUDA parts in src/core/cuda/ when built with CUDA).
bool cuda_available();      // built with CUDA and at least one device visible
int cuda_device_count();    // 0 without CUDA
std::string cuda_device_name(int index);

}  // namespace hyscale

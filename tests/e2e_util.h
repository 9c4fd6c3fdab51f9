// Helpers for end-to-end tests: temp dirs, a small synthetic corpus, running the CLI.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/random.h"
#include "data/prepare.h"
#include "data/test_util.h"

namespace hyscale::testing {

using TempDir = hyscale::test::TempDir;  // tests/data/test_util.h

// A learnable corpus: sentences from a tiny grammar, documents separated by "%".
inline std::string make_corpus(const std::string& dir, int n_docs = 400, uint64_t seed = 5) {
  const char* subj[] = {"the cat", "a dog", "my friend", "the old man", "every child"};
  const char* verb[] = {"sees", "likes", "eats", "finds", "paints"};
  const char* obj[] = {"the red ball.", "a green apple.", "the big house.", "some fresh bread.", "a small boat."};
  Rng r(seed);
  const std::string path = dir + "/corpus.txt";
  std::ofstream out(path);
  for (int d = 0; d < n_docs; ++d) {
    const int n = 1 + static_cast<int>(r.below(3));
    for (int s = 0; s < n; ++s)
      out << subj[r.below(5)] << " " << verb[r.below(5)] << " " << obj[r.below(5)] << (s + 1 < n ? " " : "\n");
    out << "%\n";
  }
  return path;
}

inline std::string prepare_corpus(const TempDir& tmp) {
  data::PrepareOptions o;
  o.inputs = {make_corpus(tmp.str())};
  o.out_dir = tmp / "data";
  o.doc_separator = std::string(1, '%');  // (GCC 12 -Wrestrict misfires on assign("%") here)
  o.val_fraction = 0.1;
  data::prepare_dataset(o);
  return o.out_dir;
}

struct CmdResult {
  int exit_code;
  std::string output;  // stdout + stderr
};

inline CmdResult run_cli(const std::string& args) {
  const std::string cmd = std::string(HYSCALE_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = p ? pclose(p) : -1;
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0), out};
}

}  // namespace hyscale::testing

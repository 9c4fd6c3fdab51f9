#include <catch2/catch.hpp>

#include "train/config.h"

using namespace hyscale;
using namespace hyscale::train;
using Catch::Matchers::Contains;

TEST_CASE("config: defaults, YAML values and --set overrides", "[config]") {
  auto c = parse_config("model:\n  n_layers: 3\n  d_model: 64\n  n_heads: 4\ntraining:\n  seq_len: 32\n", "t.yaml",
                        {"optimizer.lr=1e-3", "model.tie_embeddings=true"});
  REQUIRE(c.model.n_layers == 3);
  REQUIRE(c.training.seq_len == 32);
  REQUIRE(c.optimizer.lr == 1e-3);
  REQUIRE(c.model.tie_embeddings);
  resolve_config(c, 320);
  REQUIRE(c.model.head_dim == 16);
  REQUIRE(c.model.mlp_hidden == 256);
  REQUIRE(c.model.n_kv_heads == 4);
  REQUIRE(c.model.vocab_size == 320);
}

TEST_CASE("config: the resolved YAML parses back to the same config", "[config]") {
  auto c = parse_config("model:\n  n_layers: 2\n  d_model: 48\n  n_heads: 3\n", "t.yaml");
  resolve_config(c, 320);
  const std::string y = to_yaml(c);
  auto c2 = parse_config(y, "resolved");
  REQUIRE(to_yaml(c2) == y);
  REQUIRE(y.find("head_dim: 16") != std::string::npos);
}

TEST_CASE("config errors name the key and what is allowed", "[config][errors]") {
  REQUIRE_THROWS_WITH(parse_config("model:\n  n_layer: 3\n", "a.yaml"),
                      Contains("a.yaml") && Contains("unknown key 'model.n_layer'") && Contains("model.n_layers"));
  REQUIRE_THROWS_WITH(parse_config("trainig:\n  seq_len: 3\n", "a.yaml"), Contains("unknown key 'trainig'"));
  REQUIRE_THROWS_WITH(parse_config("training:\n  seq_len: abc\n", "a.yaml"),
                      Contains("training.seq_len") && Contains("integer") && Contains("abc"));
  REQUIRE_THROWS_WITH(parse_config("training:\n  seq_len: 1.5\n", "a.yaml"), Contains("training.seq_len"));
  REQUIRE_THROWS_WITH(parse_config("optimizer:\n  lr: fast\n", "a.yaml"), Contains("optimizer.lr"));
  REQUIRE_THROWS_WITH(parse_config("training:\n  batch_size: 0\n", "a.yaml"),
                      Contains("training.batch_size") && Contains("out of range"));
  REQUIRE_THROWS_WITH(parse_config("schedule:\n  decay: exponential\n", "a.yaml"),
                      Contains("schedule.decay") && Contains("linear, cosine, constant"));
  REQUIRE_THROWS_WITH(parse_config("model:\n  tie_embeddings: maybe\n", "a.yaml"), Contains("model.tie_embeddings"));
  REQUIRE_THROWS_WITH(parse_config("model: 3\n", "a.yaml"), Contains("model"));
  REQUIRE_THROWS_WITH(parse_config("model:\n  n_layers: [1, 2]\n", "a.yaml"), Contains("model.n_layers"));
  REQUIRE_THROWS_WITH(parse_config("model: {n_layers: 2\n", "a.yaml"), Contains("invalid YAML"));
  REQUIRE_THROWS_WITH(parse_config("", "a.yaml", {"training.nope=3"}), Contains("--set") && Contains("training.nope"));
  REQUIRE_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.lr=inf"}), Contains("optimizer.lr") && Contains("finite"));
  REQUIRE_THROWS_WITH(parse_config("optimizer:\n  lr: 1e400\n", "a.yaml"), Contains("optimizer.lr"));
  REQUIRE_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.eps=0"}), Contains("optimizer.eps") && Contains("range"));
  REQUIRE_THROWS_WITH(parse_config("", "a.yaml", {"training.seq_len"}), Contains("key=value"));
  auto c = parse_config("model:\n  n_layers: 1\n  d_model: 48\n  n_heads: 6\n  n_kv_heads: 4\n", "a.yaml");
  REQUIRE_THROWS_WITH(resolve_config(c, 320), Contains("model.n_kv_heads"));
  REQUIRE_THROWS_WITH(load_config("/nonexistent/x.yaml"), Contains("/nonexistent/x.yaml"));
}

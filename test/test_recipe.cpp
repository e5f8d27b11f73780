// The presets against the tables of method.md (4.2: removal steps per site; 6.1: learning rate, batch, momentum,
// aux weight): every removal event and the learning rate at every step, printed and checked.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>

#include "lnfree/error.h"
#include "lnfree/file_io.h"
#include "lnfree/recipe.h"

using namespace lnfree;

namespace {

struct Published {
    const char* name;
    int L;
    int ln2_first, ln2_last, ln1qk_first, ln1qk_last, ln1v_first, ln1v_last, lnf;
    double peak, floor;
    int warmup, length, steps, micro_batch, grad_accum;
    double momentum, w_aux, lr_at_release;
};

// method.md 4.2 and 6.1, as published
const Published kTables[] = {
    {"small", 12, 20, 42, 44, 66, 68, 101, 104, 6e-4, 3e-4, 25, 300, 300, 32, 16, 0.9, 0.1, 3.0e-4},
    {"medium", 24, 20, 66, 68, 114, 116, 185, 188, 6e-4, 3e-4, 10, 500, 500, 22, 23, 0.9, 0.1, 3.0e-4},
    {"large", 36, 30, 170, 174, 314, 318, 528, 534, 3e-4, 4e-5, 15, 1200, 600, 28, 18, 0.912, 0.03, 1.73e-4},
    {"xl", 48, 50, 238, 242, 430, 434, 716, 722, 1e-4, 2e-5, 20, 1200, 800, 18, 28, 0.9425, 0.01, 4.06e-5},
};

}  // namespace

TEST_CASE("each preset's removal events and learning rate equal method.md's tables", "[recipe]") {
    for (const Published& t : kTables) {
        INFO(t.name);
        const Recipe r = preset_recipe(t.name, t.L);
        CHECK(r.micro_batch == t.micro_batch);
        CHECK(r.grad_accum == t.grad_accum);
        CHECK(r.steps == t.steps);
        CHECK(r.momentum_ln1 == Approx(t.momentum).epsilon(1e-3));
        CHECK(r.momentum_lnf == r.momentum_ln1);
        CHECK(r.w_aux == t.w_aux);
        CHECK((r.beta1 == 0.9 && r.beta2 == 0.999 && r.eps == 1e-8 && r.weight_decay == 0.01 && r.clip == 1.0));
        CHECK(r.dropout == 0.1);
        CHECK(r.ignore_eot_targets);

        LayerNormPaths paths(t.L);
        std::map<std::string, int> when;
        for (int k = 0; k < r.steps; k++)
            for (const std::string& name : apply_removal_events(r.events, k, paths)) when[name] = k;
        REQUIRE(when.size() == (size_t)(3 * t.L + 1));
        CHECK(when["ln2.0"] == t.ln2_first);
        CHECK(when["ln2." + std::to_string(t.L - 1)] == t.ln2_last);
        CHECK(when["ln1qk.0"] == t.ln1qk_first);
        CHECK(when["ln1qk." + std::to_string(t.L - 1)] == t.ln1qk_last);
        CHECK(when["ln1v.0"] == t.ln1v_first);
        CHECK(when["ln1v." + std::to_string(t.L - 1)] == t.ln1v_last);
        CHECK(when["lnf"] == t.lnf);
        for (int i = 1; i < t.L; i++) {  // every layer in order, evenly spaced
            CHECK(when["ln2." + std::to_string(i)] - when["ln2." + std::to_string(i - 1)] == (t.ln2_last - t.ln2_first) / (t.L - 1));
            CHECK(when["ln1v." + std::to_string(i)] - when["ln1v." + std::to_string(i - 1)] == (t.ln1v_last - t.ln1v_first) / (t.L - 1));
        }

        // the learning rate at every step: HF's cosine_with_min_lr with warmup from 0
        for (int k = 0; k <= r.steps; k++) {
            const double expected = k < t.warmup ? t.peak * k / t.warmup
                                                 : t.floor + (t.peak - t.floor) * 0.5 *
                                                                 (1 + std::cos(M_PI * (k - t.warmup) / (t.length - t.warmup)));
            REQUIRE(r.lr.at(k) == Approx(expected).epsilon(1e-12).margin(1e-15));
        }
        CHECK(r.lr.at(t.steps) == Approx(t.lr_at_release).epsilon(0.01));
        std::printf("%-6s ln2 %d..%d  ln1qk %d..%d  ln1v %d..%d  lnf %d  lr(0) %.2g  lr(%d) %.3g  lr(%d) %.3g\n", t.name,
                    t.ln2_first, t.ln2_last, t.ln1qk_first, t.ln1qk_last, t.ln1v_first, t.ln1v_last, t.lnf, r.lr.at(0),
                    t.warmup, r.lr.at(t.warmup), t.steps, r.lr.at(t.steps));
    }
}

TEST_CASE("vanilla keeps LayerNorm with the preset's optimisation; weight decay masks differ as published", "[recipe]") {
    const Recipe lnfree = preset_recipe("small", 12), vanilla = preset_recipe("vanilla", 12);
    CHECK(vanilla.events.empty());
    CHECK(vanilla.lr.peak == lnfree.lr.peak);
    CHECK(vanilla.steps == lnfree.steps);
    const auto d1 = decay_mask(lnfree), d2 = decay_mask(vanilla);
    CHECK(d1[LN1W]);   // the substitute's gamma is decayed (it is not an nn.LayerNorm to the HF optimizer)
    CHECK_FALSE(d2[LN1W]);
    CHECK(d1[WTE]);
    CHECK_FALSE(d1[QKVB]);
    CHECK_FALSE(d1[LNFB]);
}

TEST_CASE("derived recipes remove every path of any depth within the run", "[recipe]") {
    for (int L : {1, 2, 4, 6, 12}) {
        for (int steps : {60, 120, 400}) {
            const Recipe r = derive_recipe(L, steps);
            LayerNormPaths paths(L);
            for (int k = 0; k < r.steps; k++) apply_removal_events(r.events, k, paths);
            INFO("L " << L << " steps " << steps);
            if (r.events.back().start < steps) CHECK(paths.real_paths_remaining() == 0);
        }
    }
    CHECK(derive_recipe(4, 120).events.back().start < 120);
}

TEST_CASE("recipe files override any field and reject unknown ones", "[recipe]") {
    Recipe r = preset_recipe("small", 12);
    apply_recipe_json(r, nlohmann::json::parse(R"({"w_aux": 0, "events": [{"kind": "ln2", "start": 0, "gap": 0},
        {"kind": "ln1qk", "start": 0}, {"kind": "ln1v", "start": 0}, {"kind": "lnf", "start": 0}], "steps": 50})"), "all_at_once.json");
    CHECK(r.w_aux == 0);
    CHECK(r.steps == 50);
    LayerNormPaths paths(12);
    CHECK(apply_removal_events(r.events, 0, paths).size() == 37);  // the "all at once" ablation
    CHECK_THROWS_WITH(apply_recipe_json(r, nlohmann::json::parse(R"({"learning_rate": 1})"), "typo.json"),
                      Catch::Contains("typo.json") && Catch::Contains("unknown recipe field 'learning_rate'"));
    CHECK_THROWS_WITH(apply_recipe_json(r, nlohmann::json::parse(R"({"steps": "many"})"), "bad.json"),
                      Catch::Contains("'steps' must be an integer"));
    CHECK_THROWS_WITH(preset_recipe("xl", 12), Catch::Contains("made for 48 layers"));
    CHECK_THROWS_WITH(preset_recipe("huge", 12), Catch::Contains("unknown"));
    const nlohmann::json round = recipe_to_json(preset_recipe("large", 36));
    Recipe back = preset_recipe("small", 12);
    apply_recipe_json(back, round, "round trip");
    CHECK(recipe_to_json(back) == round);
}

TEST_CASE("every recipe field out of its range is refused, naming the field", "[recipe]") {
    const std::vector<std::pair<const char*, const char*>> bad = {
        {R"({"lr": -1e-4})", "lr >= 0"}, {R"({"min_lr": -1})", "min_lr >= 0"}, {R"({"momentum": 1.5})", "momentum"},
        {R"({"momentum_lnf": -0.1})", "momentum"}, {R"({"beta1": 1.0})", "beta1"}, {R"({"beta2": -0.5})", "beta2"},
        {R"({"eps": 0})", "eps > 0"}, {R"({"weight_decay": -0.01})", "weight_decay"}, {R"({"clip": 0})", "clip > 0"},
        {R"({"w_aux": -1})", "w_aux"}, {R"({"spike_factor": 0.5})", "spike_factor"}, {R"({"dropout": 1})", "dropout"},
        {R"({"steps": -3})", "steps >= 0"}, {R"({"seq_len": 1})", "seq_len >= 2"}, {R"({"ln1_calls": 9})", "ln1_calls"},
        {R"({"events": [{"kind": "ln2", "start": 3, "gapp": 2}]})", "unknown event field 'gapp'"}};
    for (const auto& [text, field] : bad) {
        Recipe r = preset_recipe("small", 12);
        INFO(text);
        CHECK_THROWS_WITH(apply_recipe_json(r, nlohmann::json::parse(text), "r.json"),
                          Catch::Contains("r.json") && Catch::Contains(field));
    }
}

TEST_CASE("the 2024 preset follows the public code: schedule, optimiser, fixed sigma, random windows", "[recipe]") {
    const Recipe r = preset_recipe("small-2024", 12);
    LayerNormPaths paths(12);
    std::map<std::string, int> first_step;
    for (int step = 0; step < r.steps; step++)
        for (const std::string& site : apply_removal_events(r.events, step, paths)) first_step[site] = step;
    for (int l = 0; l < 12; l++) {  // method.md 4.3: 200+20i, 440+20i, 680+30i, then ln_f at 1040
        CHECK(first_step["ln2." + std::to_string(l)] == 200 + 20 * l);
        CHECK(first_step["ln1qk." + std::to_string(l)] == 440 + 20 * l);
        CHECK(first_step["ln1v." + std::to_string(l)] == 680 + 30 * l);
    }
    CHECK(first_step["lnf"] == 1040);
    CHECK(paths.real_paths_remaining() == 0);
    CHECK(std::abs(r.lr.at(1000) - 3.52e-4) < 0.005e-4);  // method.md 6.2: lr(1000) = 3.52e-4, lr(1160) = 2.81e-4
    CHECK(std::abs(r.lr.at(1160) - 2.81e-4) < 0.005e-4);
    CHECK(r.micro_batch * r.grad_accum == 480);
    CHECK((r.beta2 == 0.95 && r.weight_decay == 0.1 && r.dropout == 0.0 && r.w_aux == 0.0));
    CHECK((r.momentum_ln1 == 1.0 && r.momentum_ln2 == 1.0 && r.momentum_lnf == 1.0));  // sigma never moves
    CHECK_FALSE(r.ignore_eot_targets);
    CHECK(r.sampling == Recipe::Sampling::random_windows);
    const std::array<bool, NUM_PARAM_TENSORS> decay = decay_mask(r);  // nanoGPT: matrices and embeddings only
    CHECK((decay[WTE] && decay[QKVW] && !decay[LN1W] && !decay[QKVB]));
    CHECK_THROWS_WITH(preset_recipe("small-2024", 24), Catch::Contains("12 layers"));
}

TEST_CASE("sigma files give every module its sigma, from a run's summary too, and name what is wrong", "[recipe]") {
    const std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/sigma_file";
    std::filesystem::create_directories(dir);
    nlohmann::json sigma;
    for (int l = 0; l < 2; l++) {
        sigma["blocks." + std::to_string(l) + ".ln_1"] = 0.5 + l;
        sigma["blocks." + std::to_string(l) + ".ln_2"] = 2.5 + l;
    }
    sigma["ln_f"] = 9.0;
    write_text_file(dir + "/sigma.json", sigma.dump());
    write_text_file(dir + "/summary.json", nlohmann::json{{"model", "tiny"}, {"sigma", sigma}}.dump());
    for (const char* file : {"/sigma.json", "/summary.json"}) {
        const SigmaState s = read_sigma_file(dir + file, 2);
        CHECK(s.sigma == std::vector<double>{0.5, 1.5, 2.5, 3.5, 9.0});  // module order: ln_1, ln_2, ln_f
        CHECK(s.ema == s.sigma);
    }
    sigma.erase("blocks.1.ln_2");
    write_text_file(dir + "/short.json", sigma.dump());
    CHECK_THROWS_WITH(read_sigma_file(dir + "/short.json", 2),
                      Catch::Contains("short.json") && Catch::Contains("'blocks.1.ln_2' is missing"));
    sigma["blocks.1.ln_2"] = -1.0;
    write_text_file(dir + "/negative.json", sigma.dump());
    CHECK_THROWS_WITH(read_sigma_file(dir + "/negative.json", 2), Catch::Contains("not a positive number"));
    write_text_file(dir + "/list.json", "[1, 2]");
    CHECK_THROWS_WITH(read_sigma_file(dir + "/list.json", 2), Catch::Contains("not a JSON object"));

    Recipe r = preset_recipe("small", 12);  // a recipe file names the sigma file relative to itself
    apply_recipe_json(r, nlohmann::json::parse(R"({"sigma_file": "sigma.json", "momentum": 1.0, "sampling": "random_windows"})"),
                      dir + "/recipe.json");
    CHECK(r.sigma_file == dir + "/sigma.json");
    CHECK(r.sampling == Recipe::Sampling::random_windows);
    CHECK_THROWS_WITH(apply_recipe_json(r, nlohmann::json::parse(R"({"sampling": "shuffle"})"), "s.json"),
                      Catch::Contains("'sampling' must be"));
}

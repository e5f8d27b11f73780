// The host side of evaluation: percentiles as numpy computes them, the per-token summaries (mean, median, CE by
// position, entropy, accuracy, ECE, divergences), eval.json and the printed table, and every form of model
// load_eval_model reads (a Hugging Face checkpoint with LayerNorm, an LN-free hf/ export, a run's checkpoint or
// output directory) with the errors it gives for what it cannot read.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "lnfree/error.h"
#include "lnfree/eval_model.h"
#include "lnfree/eval_report.h"
#include "lnfree/export.h"
#include "lnfree/model_source.h"
#include "lnfree/token_statistics.h"
#include "test/hf_checkpoint_writer.h"

using namespace lnfree;
using namespace lnfree::test;

namespace {

namespace fs = std::filesystem;

std::string scratch(const std::string& name) {
    std::string dir = std::string(LNFREE_SOURCE_DIR) + "/build/test_scratch/evaluation/" + name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

double pct(std::vector<float> v, double q) { return percentile(v, q); }

// 2 chunks x 3 positions. Losses 1..6, entropies 0.5..3, confidences chosen so that with 4 bins
// [0, .25) holds 0.1 and 0.2, [.25, .5) nothing, [.5, .75) 0.6 and 0.7, [.75, 1] 0.9 and exactly 1.0.
TokenRecords hand_records() {
    TokenRecords r;
    r.positions = 3;
    r.loss = {1, 2, 3, 4, 5, 6};
    r.entropy = {0.5f, 1.0f, 1.5f, 2.0f, 2.5f, 3.0f};
    r.confidence = {0.1f, 0.2f, 0.6f, 0.7f, 1.0f, 0.9f};
    r.correct = {0, 1, 1, 0, 1, 1};
    return r;
}

bool all_fixed(const LayerNormPaths& p, int L) {
    if ((int)p.ln2_fixed.size() != L || (int)p.ln1qk_fixed.size() != L || (int)p.ln1v_fixed.size() != L) return false;
    for (int l = 0; l < L; l++)
        if (!p.ln2_fixed[l] || !p.ln1qk_fixed[l] || !p.ln1v_fixed[l]) return false;
    return p.lnf_fixed;
}

nlohmann::json checkpoint_state(int step, const std::vector<bool>& ln2, const std::vector<bool>& ln1qk,
                                const std::vector<bool>& ln1v, bool lnf, const std::vector<double>& sigma,
                                const std::vector<double>& ema) {
    return {{"step", step}, {"fixed", {{"ln2", ln2}, {"ln1qk", ln1qk}, {"ln1v", ln1v}, {"lnf", lnf}}},
            {"sigma", sigma}, {"sigma_ema", ema}};
}

void write_checkpoint(const std::string& dir, const ParameterSet<float>& p, const nlohmann::json& state) {
    make_directories(dir);
    write_llmc_model(dir + "/model.bin", p);
    write_text_file(dir + "/state.json", state.dump(2));
}

}  // namespace

TEST_CASE("percentile equals numpy.percentile (linear interpolation)", "[evaluation]") {
    // expected values: numpy 1.x/2.x, np.percentile(v, q) with the default method "linear", e.g.
    //   .venv/bin/python -c 'import numpy as np; print(np.percentile([3,1,2], [0,2.5,50,99.9,100]))'
    // and checked by hand: h = (n-1) q/100, v[floor h] + frac(h) (v[floor h + 1] - v[floor h]) on the sorted values.
    SECTION("odd size") {
        const std::vector<float> v = {3, 1, 2};  // sorted 1 2 3
        CHECK(pct(v, 0) == 1.0);
        CHECK(pct(v, 2.5) == Approx(1.05));  // h = 0.05
        CHECK(pct(v, 50) == 2.0);
        CHECK(pct(v, 99.9) == Approx(2.998));  // h = 1.998
        CHECK(pct(v, 100) == 3.0);
    }
    SECTION("even size") {
        const std::vector<float> v = {4, 1, 3, 2};  // sorted 1 2 3 4
        CHECK(pct(v, 0) == 1.0);
        CHECK(pct(v, 2.5) == Approx(1.075));  // h = 0.075
        CHECK(pct(v, 50) == Approx(2.5));     // h = 1.5: the mean of the two middle values
        CHECK(pct(v, 99.9) == Approx(3.997));
        CHECK(pct(v, 100) == 4.0);
    }
    SECTION("repeated values") {
        const std::vector<float> v = {5, 5, 5, 1, 9};  // sorted 1 5 5 5 9
        CHECK(pct(v, 0) == 1.0);
        CHECK(pct(v, 2.5) == Approx(1.4));  // h = 0.1: 1 + 0.1 * 4
        CHECK(pct(v, 50) == 5.0);
        CHECK(pct(v, 99.9) == Approx(8.984));  // h = 3.996: 5 + 0.996 * 4
        CHECK(pct(v, 100) == 9.0);
        const std::vector<float> w = {10, 0, 3, 3, 7, 1};  // sorted 0 1 3 3 7 10
        CHECK(pct(w, 0) == 0.0);
        CHECK(pct(w, 2.5) == Approx(0.125));  // h = 0.125
        CHECK(pct(w, 50) == 3.0);             // h = 2.5 between the two 3s
        CHECK(pct(w, 97.5) == Approx(9.625));  // h = 4.875: 7 + 0.875 * 3
        CHECK(pct(w, 99.9) == Approx(9.985));
        CHECK(pct(w, 100) == 10.0);
        const std::vector<float> same = {2, 2, 2, 2};
        for (double q : {0.0, 2.5, 50.0, 99.9, 100.0}) CHECK(pct(same, q) == 2.0);
    }
    SECTION("a single value") {
        for (double q : {0.0, 2.5, 50.0, 99.9, 100.0}) CHECK(pct({7.5f}, q) == 7.5);
    }
    SECTION("the same values in any order, and no values") {
        CHECK(pct({9, 5, 1, 5, 5}, 99.9) == pct({1, 5, 5, 5, 9}, 99.9));
        CHECK(pct({1, 3, 0, 10, 7, 3}, 2.5) == pct({10, 0, 3, 3, 7, 1}, 2.5));
        std::vector<float> none;
        CHECK_THROWS(percentile(none, 50));
    }
}

TEST_CASE("summarize: mean, median, percentiles, CE by position, entropy, accuracy, ECE", "[evaluation]") {
    const TokenRecords r = hand_records();
    const TokenSummary s = summarize(r, 4);
    CHECK(s.tokens == 6);
    CHECK(s.mean == Approx(3.5));
    CHECK(s.median == Approx(3.5));
    // numpy.percentile([1..6], q): h = 5 q / 100
    CHECK(s.ranges[0][0] == Approx(1.125));
    CHECK(s.ranges[0][1] == Approx(5.875));
    CHECK(s.ranges[1][0] == Approx(1.05));
    CHECK(s.ranges[1][1] == Approx(5.95));
    CHECK(s.ranges[2][0] == Approx(1.005));
    CHECK(s.ranges[2][1] == Approx(5.995));
    // position p: tokens p and 3 + p
    REQUIRE(s.by_position.size() == 3);
    CHECK(s.by_position[0] == Approx(2.5));
    CHECK(s.by_position[1] == Approx(3.5));
    CHECK(s.by_position[2] == Approx(4.5));
    CHECK(s.entropy == Approx(1.75));
    CHECK(s.accuracy == Approx(4.0 / 6.0));

    REQUIRE(s.calibration.size() == 4);
    CHECK(s.calibration[0].count == 2);
    CHECK(s.calibration[0].confidence == Approx(0.15));
    CHECK(s.calibration[0].accuracy == Approx(0.5));
    CHECK(s.calibration[1].count == 0);
    CHECK(s.calibration[1].confidence == 0.0);
    CHECK(s.calibration[1].accuracy == 0.0);
    CHECK(s.calibration[2].count == 2);
    CHECK(s.calibration[2].confidence == Approx(0.65));
    CHECK(s.calibration[2].accuracy == Approx(0.5));
    CHECK(s.calibration[3].count == 2);  // 0.9 and the confidence of exactly 1.0
    CHECK(s.calibration[3].confidence == Approx(0.95));
    CHECK(s.calibration[3].accuracy == Approx(1.0));
    // (2/6) 0.35 + (2/6) 0.15 + (2/6) 0.05
    CHECK(s.ece == Approx(0.55 / 3.0));

    // nothing to compare with: the reference itself
    CHECK_FALSE(s.compared);
    CHECK(s.kl_ref_to_model == 0.0);
    CHECK(s.kl_model_to_ref == 0.0);
    CHECK(s.jsd == 0.0);
}

TEST_CASE("summarize: the default 15 bins put a confidence of 1.0 in the last; divergences when compared", "[evaluation]") {
    TokenRecords r = hand_records();
    const TokenSummary s = summarize(r);
    REQUIRE(s.calibration.size() == (size_t)kCalibrationBins);
    CHECK(s.calibration[kCalibrationBins - 1].count == 1);  // 1.0 alone: 0.9 * 15 = 13.5 is bin 13
    CHECK(s.calibration[kCalibrationBins - 1].confidence == Approx(1.0));
    CHECK(s.calibration[kCalibrationBins - 1].accuracy == Approx(1.0));
    CHECK(s.calibration[13].count == 1);
    CHECK(s.calibration[1].count == 1);  // 0.1 * 15 = 1.5
    CHECK(s.calibration[3].count == 1);  // 0.2 * 15 = 3
    CHECK(s.calibration[9].count == 1);  // 0.6 * 15 = 9
    CHECK(s.calibration[10].count == 1);  // 0.7 * 15 = 10.5
    size_t counted = 0;
    for (const CalibrationBin& b : s.calibration) counted += b.count;
    CHECK(counted == 6);
    // one token per bin: ECE = mean |correct - confidence| = (0.1 + 0.8 + 0.4 + 0.7 + 0 + 0.1) / 6
    CHECK(s.ece == Approx(2.1 / 6.0));
    CHECK_FALSE(s.compared);

    r.kl_ref_to_model = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    r.kl_model_to_ref = {0.6f, 0.6f, 0.6f, 0.0f, 0.0f, 0.0f};
    r.jsd = {0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f};
    const TokenSummary c = summarize(r);
    CHECK(c.compared);
    CHECK(c.kl_ref_to_model == Approx(0.35));
    CHECK(c.kl_model_to_ref == Approx(0.3));
    CHECK(c.jsd == Approx(0.035));
    // the rest does not change
    CHECK(c.mean == s.mean);
    CHECK(c.ece == s.ece);

    CHECK_THROWS(summarize(TokenRecords{}));
}

TEST_CASE("eval_json and eval_table: two models, one dataset, one multiple-choice set", "[evaluation]") {
    const TokenRecords base = hand_records();
    TokenRecords other = hand_records();
    for (float& x : other.loss) x += 0.1f;
    other.kl_ref_to_model = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
    other.kl_model_to_ref = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f};
    other.jsd = {0.03f, 0.03f, 0.03f, 0.03f, 0.03f, 0.03f};

    EvalReport report;
    report.models = {{"gpt2", "models/gpt2", "real"}, {"lnfree", "runs/a/hf", "none"}};
    DatasetResult d;
    d.name = "openwebtext";
    d.pattern = "data/openwebtext/openwebtext_val_*.bin";
    d.seq_len = 4;
    d.chunks = 2;
    d.models = {summarize(base), summarize(other)};
    report.datasets.push_back(d);
    MultipleChoiceResult h;
    h.name = "hellaswag";
    h.path = "data/hellaswag/hellaswag_val.bin";
    h.examples = 3;
    h.acc = {2.0 / 3.0, 1.0 / 3.0};
    h.acc_norm = {1.0, 2.0 / 3.0};
    h.predicted = {{0, 1, 3}, {2, 1, 3}};
    h.predicted_norm = {{0, 1, 2}, {0, 1, 3}};
    report.multiple_choice.push_back(h);

    const nlohmann::ordered_json j = eval_json(report);
    CHECK(j.at("reference") == "gpt2");
    REQUIRE(j.at("models").size() == 2);
    CHECK(j["models"][0]["label"] == "gpt2");
    CHECK(j["models"][0]["path"] == "models/gpt2");
    CHECK(j["models"][0]["layernorm"] == "real");
    CHECK(j["models"][1]["label"] == "lnfree");
    CHECK(j["models"][1]["layernorm"] == "none");

    const auto& dj = j.at("datasets").at("openwebtext");
    CHECK(dj.at("pattern") == d.pattern);
    CHECK(dj.at("seq_len") == 4);
    CHECK(dj.at("chunks") == 2);
    REQUIRE(dj.at("models").size() == 2);
    CHECK(dj["models"].begin().key() == "gpt2");  // in the order of the models
    CHECK((++dj["models"].begin()).key() == "lnfree");
    for (const char* label : {"gpt2", "lnfree"}) {
        INFO(label);
        const auto& m = dj.at("models").at(label);
        const double shift = std::string(label) == "gpt2" ? 0.0 : 0.1;
        CHECK(m.at("tokens") == 6);
        CHECK(m.at("mean").get<double>() == Approx(3.5 + shift));
        CHECK(m.at("median").get<double>() == Approx(3.5 + shift));
        const auto& p = m.at("percentiles");
        CHECK(p.size() == 6);
        CHECK(p.at("p2.5").get<double>() == Approx(1.125 + shift));
        CHECK(p.at("p97.5").get<double>() == Approx(5.875 + shift));
        CHECK(p.at("p1").get<double>() == Approx(1.05 + shift));
        CHECK(p.at("p99").get<double>() == Approx(5.95 + shift));
        CHECK(p.at("p0.1").get<double>() == Approx(1.005 + shift));
        CHECK(p.at("p99.9").get<double>() == Approx(5.995 + shift));
        REQUIRE(m.at("by_position").size() == 3);
        CHECK(m["by_position"][0].get<double>() == Approx(2.5 + shift));
        CHECK(m["by_position"][2].get<double>() == Approx(4.5 + shift));
        CHECK(m.at("entropy").get<double>() == Approx(1.75));
        CHECK(m.at("accuracy").get<double>() == Approx(4.0 / 6.0));
        CHECK(m.at("ece").get<double>() == Approx(2.1 / 6.0));
        REQUIRE(m.at("calibration").size() == (size_t)kCalibrationBins);
        CHECK(m["calibration"][14]["count"] == 1);
        CHECK(m["calibration"][14]["confidence"].get<double>() == Approx(1.0));
        CHECK(m["calibration"][14]["accuracy"].get<double>() == Approx(1.0));
        CHECK(m["calibration"][0]["count"] == 0);
    }
    CHECK_FALSE(dj["models"]["gpt2"].contains("against_reference"));
    const auto& against = dj["models"]["lnfree"].at("against_reference");
    CHECK(against.at("kl_reference_to_model").get<double>() == Approx(0.1));
    CHECK(against.at("kl_model_to_reference").get<double>() == Approx(0.2));
    CHECK(against.at("symmetric_kl").get<double>() == Approx(0.3));
    CHECK(against.at("jsd").get<double>() == Approx(0.03));

    const auto& hj = j.at("multiple_choice").at("hellaswag");
    CHECK(hj.at("path") == h.path);
    CHECK(hj.at("examples") == 3);
    CHECK(hj.at("models").begin().key() == "gpt2");
    CHECK(hj["models"]["gpt2"]["acc"].get<double>() == Approx(2.0 / 3.0));
    CHECK(hj["models"]["gpt2"]["acc_norm"].get<double>() == Approx(1.0));
    CHECK(hj["models"]["gpt2"]["predicted"].get<std::vector<int>>() == std::vector<int>{0, 1, 3});
    CHECK(hj["models"]["gpt2"]["predicted_norm"].get<std::vector<int>>() == std::vector<int>{0, 1, 2});
    CHECK(hj["models"]["lnfree"]["acc"].get<double>() == Approx(1.0 / 3.0));
    CHECK(hj["models"]["lnfree"]["acc_norm"].get<double>() == Approx(2.0 / 3.0));
    CHECK(hj["models"]["lnfree"]["predicted"].get<std::vector<int>>() == std::vector<int>{2, 1, 3});
    CHECK(hj["models"]["lnfree"]["predicted_norm"].get<std::vector<int>>() == std::vector<int>{0, 1, 3});
    // it round-trips through text
    CHECK(nlohmann::ordered_json::parse(j.dump()) == j);

    const std::string table = eval_table(report);
    INFO(table);
    CHECK_THAT(table, Catch::Contains("openwebtext (2 chunks of 4 tokens, 6 targets)"));
    CHECK_THAT(table, Catch::Contains("JSD vs gpt2"));
    CHECK_THAT(table, Catch::Contains("  gpt2 "));
    CHECK_THAT(table, Catch::Contains("  lnfree "));
    CHECK_THAT(table, Catch::Contains("3.5000"));
    CHECK_THAT(table, Catch::Contains("3.6000 (+0.1000)"));
    CHECK_THAT(table, Catch::Contains("0.0300"));  // the second model's JSD
    CHECK_THAT(table, Catch::Contains("hellaswag (3 examples, completion style)"));
    CHECK_THAT(table, Catch::Contains("0.6667"));
    CHECK_THAT(table, Catch::Contains("0.3333"));
    // the reference has no difference and no JSD: its row ends in "-"
    const size_t row = table.find("  gpt2 ");
    const std::string gpt2_row = table.substr(row, table.find('\n', row) - row);
    CHECK_THAT(gpt2_row, !Catch::Contains("(+"));
    CHECK(gpt2_row.back() == '-');

    // a model worse than the reference shows a negative difference
    report.datasets[0].models[1].mean = 3.45;
    CHECK_THAT(eval_table(report), Catch::Contains("3.4500 (-0.0500)"));
}

TEST_CASE("load_eval_model: a Hugging Face checkpoint with LayerNorm and an llm.c file, every path real", "[evaluation]") {
    const GPT2Config c{2, 20, 5, 97, 128, 16};
    const ParameterSet<float> p = random_params(c, 21);
    const std::string dir = scratch("hf_real");
    write_hf_checkpoint(dir + "/model", p, HfLayout{});

    EvalModel m = load_eval_model("gpt2", dir + "/model");
    CHECK(m.label == "gpt2");
    CHECK(m.path == dir + "/model");
    CHECK(m.params.config.L == 2);
    CHECK(m.params.config.Vp == 128);
    CHECK(m.params.data == p.data);
    CHECK(m.paths.real_paths_remaining() == 3 * c.L + 1);
    CHECK(m.layernorm() == "real");
    CHECK(m.sigma.sigma.size() == (size_t)(2 * c.L + 1));
    CHECK(m.tokenizer_dir.empty());  // no vocab.json

    write_text_file(dir + "/model/vocab.json", "{\"a\": 0}");
    CHECK(load_eval_model("gpt2", dir + "/model").tokenizer_dir == dir + "/model");

    write_llmc_model(dir + "/model.bin", p);
    EvalModel b = load_eval_model("llmc", dir + "/model.bin");
    CHECK(b.params.data == p.data);
    CHECK(b.layernorm() == "real");
    CHECK(b.paths.real_paths_remaining() == 3 * c.L + 1);
    fs::remove_all(dir);
}

TEST_CASE("load_eval_model: an LN-free hf/ export, every path fixed with sigma 1e6", "[evaluation]") {
    const GPT2Config c{2, 20, 5, 97, 128, 16};
    ParameterSet<float> p = random_params(c, 22);
    for (int i : {LN1W, LN2W, LNFW})
        for (size_t k = 0; k < p.numel(i); k++) p.tensor(i)[k] += 1.0f;
    const std::vector<double> sigma = {0.5, 0.6, 0.7, 0.8, 2.0};  // ln1 of 0, 1; ln2 of 0, 1; ln_f
    const std::string dir = scratch("hf_export");
    export_lnfree(dir, p, sigma, "");

    // the engine's loader for training refuses it
    CHECK_THROWS_AS(load_hf_checkpoint(dir + "/hf"), Error);
    CHECK_THROWS_WITH(load_hf_checkpoint(dir + "/hf"), Catch::Contains("LN-free export"));
    CHECK_THROWS_WITH(load_hf_checkpoint(dir + "/hf", HfLayerNorm::real), Catch::Contains(dir + "/hf"));

    EvalModel m = load_eval_model("lnfree", dir + "/hf");
    CHECK(m.path == dir + "/hf");
    CHECK(all_fixed(m.paths, c.L));
    CHECK(m.paths.real_paths_remaining() == 0);
    CHECK(m.layernorm() == "none");
    REQUIRE(m.sigma.sigma.size() == (size_t)(2 * c.L + 1));
    for (double s : m.sigma.sigma) {
        CHECK(s == std::sqrt(1e12));
        CHECK(s == 1e6);
    }
    CHECK(m.tokenizer_dir.empty());
    // LayerNorm weights gamma * 1e6 / sigma, everything else as it was
    for (int l = 0; l < c.L; l++)
        for (int k = 0; k < c.C; k++) {
            CHECK(m.params.tensor(LN1W)[l * c.C + k] == Approx(p.tensor(LN1W)[l * c.C + k] * 1e6 / sigma[ln1_module(l)]).epsilon(1e-6));
            CHECK(m.params.tensor(LN2W)[l * c.C + k] == Approx(p.tensor(LN2W)[l * c.C + k] * 1e6 / sigma[ln2_module(c.L, l)]).epsilon(1e-6));
        }
    for (int k = 0; k < c.C; k++)
        CHECK(m.params.tensor(LNFW)[k] == Approx(p.tensor(LNFW)[k] * 1e6 / sigma[lnf_module(c.L)]).epsilon(1e-6));
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        if (i == LN1W || i == LN2W || i == LNFW) continue;
        INFO("tensor " << kParamNames[i]);
        size_t mismatches = 0;
        for (size_t k = 0; k < p.numel(i); k++) mismatches += m.params.tensor(i)[k] != p.tensor(i)[k];
        CHECK(mismatches == 0);
    }
    // the effective scale the engine applies, w / sigma, is gamma / sigma_trained
    CHECK(m.params.tensor(LNFW)[0] / m.sigma.sigma[lnf_module(c.L)] == Approx(p.tensor(LNFW)[0] / 2.0).epsilon(1e-6));
    fs::remove_all(dir);
}

TEST_CASE("load_eval_model: a run's checkpoint directory and its output directory", "[evaluation]") {
    const GPT2Config c{2, 20, 5, 97, 128, 16};
    const ParameterSet<float> p = random_params(c, 23);
    const std::string dir = scratch("checkpoints");
    const std::vector<double> sigma = {0.5, 0.6, 0.7, 0.8, 2.0}, ema = {0.51, 0.61, 0.71, 0.81, 2.1};
    // ln2 of layer 0, ln1v of both layers and ln_f fixed: 3 of 7 paths still real
    write_checkpoint(dir + "/run/checkpoint_3", p,
                     checkpoint_state(3, {true, false}, {false, false}, {true, true}, true, sigma, ema));

    EvalModel m = load_eval_model("ckpt", dir + "/run/checkpoint_3");
    CHECK(m.path == dir + "/run/checkpoint_3");
    CHECK(m.params.data == p.data);
    CHECK(m.paths.ln2_fixed == std::vector<bool>{true, false});
    CHECK(m.paths.ln1qk_fixed == std::vector<bool>{false, false});
    CHECK(m.paths.ln1v_fixed == std::vector<bool>{true, true});
    CHECK(m.paths.lnf_fixed);
    CHECK(m.paths.real_paths_remaining() == 3);
    CHECK(m.layernorm() == "partial");
    CHECK(m.sigma.sigma == sigma);
    CHECK(m.sigma.ema == ema);

    // a later checkpoint (10 < 3 as text: the step must be compared as a number), an interrupted save, and a
    // directory a user named checkpoint_best (not a step: skipped, not a crash)
    ParameterSet<float> later = random_params(c, 24);
    const std::vector<double> sigma10 = {1.5, 1.6, 1.7, 1.8, 3.0};
    write_checkpoint(dir + "/run/checkpoint_10", later,
                     checkpoint_state(10, {true, true}, {true, false}, {true, true}, true, sigma10, sigma10));
    write_checkpoint(dir + "/run/checkpoint_20.tmp", p,
                     checkpoint_state(20, {true, true}, {true, true}, {true, true}, true, sigma, ema));
    write_checkpoint(dir + "/run/checkpoint_best", p,
                     checkpoint_state(30, {true, true}, {true, true}, {true, true}, true, sigma, ema));
    EvalModel r = load_eval_model("run", dir + "/run");
    CHECK(r.label == "run");
    CHECK(r.path == dir + "/run/checkpoint_10");
    CHECK(r.params.data == later.data);
    CHECK(r.sigma.sigma == sigma10);
    CHECK(r.paths.real_paths_remaining() == 1);
    CHECK(r.layernorm() == "partial");

    // every path fixed: "none"
    write_checkpoint(dir + "/done", p, checkpoint_state(30, {true, true}, {true, true}, {true, true}, true, sigma, ema));
    CHECK(load_eval_model("done", dir + "/done").layernorm() == "none");
    fs::remove_all(dir);
}

TEST_CASE("load_eval_model: what it cannot read is an lnfree::Error naming the path", "[evaluation]") {
    const GPT2Config c{2, 20, 5, 97, 128, 16};
    const ParameterSet<float> p = random_params(c, 25);
    const std::string dir = scratch("errors");
    const std::vector<double> sigma = {0.5, 0.6, 0.7, 0.8, 2.0};

    SECTION("a missing path") {
        const std::string missing = dir + "/no_such_model";
        CHECK_THROWS_AS(load_eval_model("x", missing), Error);
        CHECK_THROWS_WITH(load_eval_model("x", missing), Catch::Contains(missing));
    }
    SECTION("a directory that is neither a Hugging Face checkpoint, a checkpoint nor a run") {
        const std::string empty = dir + "/neither";
        make_directories(empty + "/logs");
        write_text_file(empty + "/notes.txt", "nothing here");
        make_directories(empty + "/checkpoint_5");  // no state.json: not a checkpoint
        CHECK_THROWS_AS(load_eval_model("x", empty), Error);
        CHECK_THROWS_WITH(load_eval_model("x", empty), Catch::Contains(empty));
    }
    SECTION("state.json's fixed lists for another depth") {
        const std::string ckpt = dir + "/wrong_length";
        write_checkpoint(ckpt, p, checkpoint_state(1, {true, false, true}, {false, false}, {true, true}, true, sigma, sigma));
        CHECK_THROWS_AS(load_eval_model("x", ckpt), Error);
        CHECK_THROWS_WITH(load_eval_model("x", ckpt), Catch::Contains(ckpt + "/state.json"));
        write_checkpoint(ckpt, p, checkpoint_state(1, {true, false}, {false}, {true, true}, true, sigma, sigma));
        CHECK_THROWS_WITH(load_eval_model("x", ckpt), Catch::Contains(ckpt + "/state.json"));
        write_checkpoint(ckpt, p, checkpoint_state(1, {true, false}, {false, false}, {true, true, true}, true, sigma, sigma));
        CHECK_THROWS_WITH(load_eval_model("x", ckpt), Catch::Contains(ckpt + "/state.json"));
        write_checkpoint(ckpt, p, checkpoint_state(1, {true, false}, {false, false}, {true, true}, true, {1, 2, 3}, sigma));
        CHECK_THROWS_WITH(load_eval_model("x", ckpt), Catch::Contains(ckpt + "/state.json"));
    }
    SECTION("state.json with a field of the wrong type or missing") {
        const std::string ckpt = dir + "/wrong_type";
        nlohmann::json state = checkpoint_state(1, {true, false}, {false, false}, {true, true}, true, sigma, sigma);
        state["fixed"]["lnf"] = "yes";
        write_checkpoint(ckpt, p, state);
        CHECK_THROWS_AS(load_eval_model("x", ckpt), Error);
        CHECK_THROWS_WITH(load_eval_model("x", ckpt), Catch::Contains(ckpt + "/state.json"));
        state = checkpoint_state(1, {true, false}, {false, false}, {true, true}, true, sigma, sigma);
        state.erase("sigma");
        write_checkpoint(ckpt, p, state);
        CHECK_THROWS_WITH(load_eval_model("x", ckpt), Catch::Contains(ckpt + "/state.json"));
    }
    SECTION("state.json that is not JSON") {
        const std::string ckpt = dir + "/run/checkpoint_7";
        write_checkpoint(ckpt, p, {});
        write_text_file(ckpt + "/state.json", "{\"step\": 3, \"fixed\": ");
        CHECK_THROWS_AS(load_eval_model("x", ckpt), Error);
        CHECK_THROWS_WITH(load_eval_model("x", ckpt), Catch::Contains(ckpt + "/state.json"));
        // and the same checkpoint found through its run directory
        CHECK_THROWS_WITH(load_eval_model("x", dir + "/run"), Catch::Contains(ckpt + "/state.json"));
    }
    fs::remove_all(dir);
}

TEST_CASE("default_eval_datasets and resolve_model", "[evaluation]") {
    const auto sets = default_eval_datasets("tiny");
    REQUIRE(sets.size() == 1);
    CHECK(sets[0].first == "tiny-val");
    CHECK(sets[0].second == "data/tiny/tiny_val_*.bin");
    CHECK(sets[0].second == resolve_model("tiny").val);
    CHECK(default_multiple_choice("tiny").empty());

    const std::string unknown = "no_such_model_for_evaluation_tests";
    CHECK_THROWS_AS(resolve_model(unknown), Error);
    CHECK_THROWS_WITH(resolve_model(unknown), Catch::Contains(unknown));
}

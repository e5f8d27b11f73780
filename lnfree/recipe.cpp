#include "lnfree/recipe.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include "lnfree/error.h"
#include "lnfree/file_io.h"

namespace lnfree {

std::vector<RemovalEvent> removal_schedule(int L, int start, int gap_ln2, int gap_ln1qk, int gap_ln1v) {
    const int ln1qk = start + L * gap_ln2, ln1v = ln1qk + L * gap_ln1qk, lnf = ln1v + L * gap_ln1v;
    return {{PathKind::LN2, start, gap_ln2}, {PathKind::LN1QK, ln1qk, gap_ln1qk}, {PathKind::LN1V, ln1v, gap_ln1v},
            {PathKind::LNF, lnf, 0}};
}

namespace {

struct SizePreset {
    const char* name;
    int L, start, gap_ln2, gap_ln1qk, gap_ln1v;
    double peak, floor;
    int warmup, length, steps, micro_batch, grad_accum;
    double w_aux;
};

// method.md 4.2 and 6.1: the configs of the released 2025 models
constexpr SizePreset kSizes[] = {
    {"small", 12, 20, 2, 2, 3, 6e-4, 3e-4, 25, 300, 300, 32, 16, 0.1},
    {"medium", 24, 20, 2, 2, 3, 6e-4, 3e-4, 10, 500, 500, 22, 23, 0.1},
    {"large", 36, 30, 4, 4, 6, 3e-4, 4e-5, 15, 1200, 600, 28, 18, 0.03},
    {"xl", 48, 50, 4, 4, 6, 1e-4, 2e-5, 20, 1200, 800, 18, 28, 0.01},
};

Recipe from_size(const SizePreset& s) {
    Recipe r;
    r.name = s.name;
    r.events = removal_schedule(s.L, s.start, s.gap_ln2, s.gap_ln1qk, s.gap_ln1v);
    // large and XL scale the EMA momentum to the micro-batch: 0.9^(micro_batch / 32)
    const double m = s.L >= 36 ? std::pow(0.9, s.micro_batch / 32.0) : 0.9;
    r.momentum_ln1 = r.momentum_ln2 = r.momentum_lnf = m;
    r.w_aux = s.w_aux;
    r.lr = LRSchedule{s.peak, s.floor, s.warmup, s.length};
    r.steps = s.steps;
    r.micro_batch = s.micro_batch;
    r.grad_accum = s.grad_accum;
    return r;
}

const SizePreset* size_for_depth(int L) {
    for (const SizePreset& s : kSizes)
        if (s.L == L) return &s;
    return nullptr;
}

}  // namespace

Recipe derive_recipe(int L, int steps) {
    // the small recipe's shape: gaps 2/2/3, removal over 7L steps, then recovery; compressed to fit `steps`
    const int start = std::max(2, steps / 15);
    const bool roomy = start + 7 * L + 2 <= steps;  // else one step between switches
    const int g2 = roomy ? 2 : 1, g1qk = roomy ? 2 : 1, g1v = roomy ? 3 : 1;
    Recipe r;
    r.name = "derived";
    r.events = removal_schedule(L, start, g2, g1qk, g1v);
    r.w_aux = 0.1;
    r.lr = LRSchedule{6e-4, 3e-4, std::max(1, steps / 12), steps};
    r.steps = steps;
    r.micro_batch = 16;
    r.grad_accum = 1;
    r.seq_len = 128;
    return r;
}

Recipe preset_recipe(const std::string& name, int L) {
    for (const SizePreset& s : kSizes)
        if (name == s.name) {
            if (L != s.L)
                throw Error("recipe " + name + ": made for " + std::to_string(s.L) + " layers, the model has " +
                            std::to_string(L) + "; use a recipe file or --recipe derived");
            return from_size(s);
        }
    if (name == "vanilla") {  // the paper's baseline: the same optimisation, LayerNorm kept, no aux loss
        const SizePreset* s = size_for_depth(L);
        Recipe r = s ? from_size(*s) : derive_recipe(L, 120);
        r.name = "vanilla";
        r.events.clear();
        r.w_aux = 0.0;
        r.decay_layernorm_weights = false;
        return r;
    }
    if (name == "pretrain") {
        Recipe r;
        r.name = "pretrain";
        r.random_init = true;
        r.w_aux = 0.0;
        r.dropout = 0.0;
        r.decay_layernorm_weights = false;
        r.ignore_eot_targets = false;
        r.lr = LRSchedule{1e-3, 1e-4, 100, 3000};
        r.steps = 3000;
        r.micro_batch = 16;
        r.seq_len = 256;
        return r;
    }
    if (name == "small-2024") {  // method.md 4.3, 6.2 and 14: nanoGPT, fixed sigma, no aux loss, no dropout
        if (L != 12) throw Error("recipe small-2024: made for GPT-2 small's 12 layers, the model has " + std::to_string(L));
        Recipe r;
        r.name = name;
        r.events = removal_schedule(12, 200, 20, 20, 30);
        r.momentum_ln1 = r.momentum_ln2 = r.momentum_lnf = 1.0;  // sigma fixed: the first batch's, or sigma_file's
        r.lr = LRSchedule{6e-4, 6e-5, 100, 2000};
        r.steps = 1200;  // the public schedule's last event is at 1160; the run length is not published
        r.micro_batch = 48;
        r.grad_accum = 10;
        r.beta2 = 0.95;
        r.weight_decay = 0.1;
        r.decay_layernorm_weights = false;
        r.dropout = 0.0;
        r.ignore_eot_targets = false;
        r.sampling = Recipe::Sampling::random_windows;
        return r;
    }
    if (name == "derived") return derive_recipe(L, 120);
    throw Error("recipe '" + name + "' is unknown; use small, medium, large, xl, small-2024, derived, vanilla, pretrain "
                "or a .json file");
}

namespace {

// A JSON integer that an int holds: get<int>() would wrap any other silently (4294967297 steps to 1).
bool is_int(const nlohmann::json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= (uint64_t)std::numeric_limits<int>::max();
    return v.is_number_integer() && v.get<int64_t>() >= std::numeric_limits<int>::min() &&
           v.get<int64_t>() <= std::numeric_limits<int>::max();
}

PathKind kind_from(const std::string& s, const std::string& source) {
    if (s == "ln2") return PathKind::LN2;
    if (s == "ln1qk") return PathKind::LN1QK;
    if (s == "ln1v") return PathKind::LN1V;
    if (s == "lnf") return PathKind::LNF;
    throw Error(source + ": event kind '" + s + "' is not ln2, ln1qk, ln1v or lnf");
}

}  // namespace

void apply_recipe_json(Recipe& r, const nlohmann::json& j, const std::string& source) {
    if (!j.is_object()) throw Error(source + ": a recipe is a JSON object of fields to override");
    for (const auto& item : j.items()) {
        // named references, not a structured binding: clang before 16 (dev/fuzz.sh's) cannot capture one in a lambda
        const std::string& key = item.key();
        const nlohmann::json& value = item.value();
        auto number = [&]() {
            if (!value.is_number()) throw Error(source + ": '" + key + "' must be a number");
            return value.get<double>();
        };
        auto integer = [&]() {
            if (!is_int(value)) throw Error(source + ": '" + key + "' must be an integer between -2147483648 and 2147483647");
            return value.get<int>();
        };
        auto boolean = [&]() {
            if (!value.is_boolean()) throw Error(source + ": '" + key + "' must be true or false");
            return value.get<bool>();
        };
        if (key == "name") {
            if (!value.is_string()) throw Error(source + ": 'name' must be a string");
            r.name = value.get<std::string>();
        }
        else if (key == "events") {
            if (!value.is_array()) throw Error(source + ": 'events' must be a list of {kind, start, gap}");
            r.events.clear();
            for (auto& e : value) {
                if (!e.is_object() || !e.contains("kind") || !e.contains("start") || !e["kind"].is_string() ||
                    !is_int(e["start"]) || (e.contains("gap") && !is_int(e["gap"])))
                    throw Error(source + ": each event is {\"kind\": \"ln2|ln1qk|ln1v|lnf\", \"start\": int, \"gap\": int}");
                for (auto& field : e.items())
                    if (field.key() != "kind" && field.key() != "start" && field.key() != "gap")
                        throw Error(source + ": unknown event field '" + field.key() + "' (an event has kind, start, gap)");
                r.events.push_back({kind_from(e["kind"], source), e["start"].get<int>(), e.value("gap", 0)});
            }
        }
        else if (key == "momentum") r.momentum_ln1 = r.momentum_ln2 = r.momentum_lnf = number();
        else if (key == "momentum_ln1") r.momentum_ln1 = number();
        else if (key == "momentum_ln2") r.momentum_ln2 = number();
        else if (key == "momentum_lnf") r.momentum_lnf = number();
        else if (key == "ln1_calls") r.ln1_calls = integer();
        else if (key == "w_aux") r.w_aux = number();
        else if (key == "lr") r.lr.peak = number();
        else if (key == "min_lr") r.lr.floor = number();
        else if (key == "warmup") r.lr.warmup = integer();
        else if (key == "schedule_length") r.lr.length = integer();
        else if (key == "steps") r.steps = integer();
        else if (key == "micro_batch") r.micro_batch = integer();
        else if (key == "grad_accum") r.grad_accum = integer();
        else if (key == "seq_len") r.seq_len = integer();
        else if (key == "beta1") r.beta1 = number();
        else if (key == "beta2") r.beta2 = number();
        else if (key == "eps") r.eps = number();
        else if (key == "weight_decay") r.weight_decay = number();
        else if (key == "decay_layernorm_weights") r.decay_layernorm_weights = boolean();
        else if (key == "clip") r.clip = number();
        else if (key == "dropout") r.dropout = number();
        else if (key == "ignore_eot_targets") r.ignore_eot_targets = boolean();
        else if (key == "random_init") r.random_init = boolean();
        else if (key == "stochastic_rounding") r.stochastic_rounding = boolean();
        else if (key == "spike_factor") r.spike_factor = number();
        else if (key == "sigma_file") {
            if (!value.is_string()) throw Error(source + ": 'sigma_file' must be a path (\"\" for none)");
            const std::filesystem::path path = value.get<std::string>();  // relative to the recipe file's folder
            r.sigma_file = path.empty() || path.is_absolute() ? path.string()
                                                              : (std::filesystem::path(source).parent_path() / path).string();
        }
        else if (key == "sampling") {
            if (value == "chunks") r.sampling = Recipe::Sampling::chunks;
            else if (value == "random_windows") r.sampling = Recipe::Sampling::random_windows;
            else throw Error(source + ": 'sampling' must be \"chunks\" or \"random_windows\"");
        }
        else throw Error(source + ": unknown recipe field '" + key + "' (see doc/trainer.md for the fields)");
    }
    // every field in its range, named when it is not (a NaN fails every comparison, so each test is written as
    // what must hold)
    const auto unit = [](double x) { return x >= 0 && x <= 1; };
    const std::vector<std::pair<bool, const char*>> ranges = {
        {r.steps >= 0, "steps >= 0"}, {r.micro_batch >= 1, "micro_batch >= 1"}, {r.grad_accum >= 1, "grad_accum >= 1"},
        {r.seq_len >= 2, "seq_len >= 2"}, {r.lr.warmup >= 0, "warmup >= 0"}, {r.lr.length >= 1, "schedule_length >= 1"},
        {r.ln1_calls >= 2 && r.ln1_calls <= 8, "ln1_calls in 2..8"}, {r.dropout >= 0 && r.dropout < 1, "dropout in [0, 1)"},
        {r.spike_factor == 0 || r.spike_factor > 1, "spike_factor 0 or above 1"},
        {r.lr.peak >= 0 && std::isfinite(r.lr.peak), "lr >= 0"}, {r.lr.floor >= 0 && std::isfinite(r.lr.floor), "min_lr >= 0"},
        {unit(r.momentum_ln1) && unit(r.momentum_ln2) && unit(r.momentum_lnf), "momentum in [0, 1]"},
        {r.beta1 >= 0 && r.beta1 < 1 && r.beta2 >= 0 && r.beta2 < 1, "beta1, beta2 in [0, 1)"},
        {r.eps > 0 && std::isfinite(r.eps), "eps > 0"}, {r.weight_decay >= 0 && std::isfinite(r.weight_decay), "weight_decay >= 0"},
        {r.clip > 0, "clip > 0"}, {r.w_aux >= 0 && std::isfinite(r.w_aux), "w_aux >= 0"}};
    for (const auto& [ok, what] : ranges)
        if (!ok) throw Error(source + ": a field is out of range: " + what);
}

nlohmann::json recipe_to_json(const Recipe& r) {
    nlohmann::json events = nlohmann::json::array();
    for (const RemovalEvent& e : r.events) events.push_back({{"kind", path_kind_name(e.kind)}, {"start", e.start}, {"gap", e.gap}});
    return {{"name", r.name}, {"events", events}, {"momentum_ln1", r.momentum_ln1}, {"momentum_ln2", r.momentum_ln2},
            {"momentum_lnf", r.momentum_lnf}, {"ln1_calls", r.ln1_calls}, {"w_aux", r.w_aux}, {"lr", r.lr.peak},
            {"min_lr", r.lr.floor}, {"warmup", r.lr.warmup}, {"schedule_length", r.lr.length}, {"steps", r.steps},
            {"micro_batch", r.micro_batch}, {"grad_accum", r.grad_accum}, {"seq_len", r.seq_len}, {"beta1", r.beta1},
            {"beta2", r.beta2}, {"eps", r.eps}, {"weight_decay", r.weight_decay},
            {"decay_layernorm_weights", r.decay_layernorm_weights}, {"clip", r.clip}, {"dropout", r.dropout},
            {"ignore_eot_targets", r.ignore_eot_targets}, {"random_init", r.random_init},
            {"stochastic_rounding", r.stochastic_rounding}, {"spike_factor", r.spike_factor}, {"sigma_file", r.sigma_file},
            {"sampling", r.sampling == Recipe::Sampling::chunks ? "chunks" : "random_windows"}};
}

SigmaState read_sigma_file(const std::string& path, int L) {
    nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, false);
    if (j.is_object() && j.contains("sigma") && j["sigma"].is_object()) j = j["sigma"];  // a run's summary.json
    if (j.is_discarded() || !j.is_object())
        throw Error(path + ": not a JSON object of sigma per module (\"blocks.0.ln_1\": 0.17, ..., \"ln_f\": 16.5)");
    SigmaState s(L);
    auto take = [&](const std::string& name, int module) {
        if (!j.contains(name) || !j[name].is_number() || !(j[name].get<double>() > 0.0) || !std::isfinite(j[name].get<double>()))
            throw Error(path + ": '" + name + "' is missing or not a positive number; every ln_1, ln_2 and ln_f needs one");
        s.ema[module] = s.sigma[module] = j[name].get<double>();
    };
    for (int l = 0; l < L; l++) {
        take("blocks." + std::to_string(l) + ".ln_1", ln1_module(l));
        take("blocks." + std::to_string(l) + ".ln_2", ln2_module(L, l));
    }
    take("ln_f", lnf_module(L));
    return s;
}

std::array<bool, NUM_PARAM_TENSORS> decay_mask(const Recipe& r) {
    std::array<bool, NUM_PARAM_TENSORS> d{};
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const bool bias = i == LN1B || i == LN2B || i == LNFB || i == QKVB || i == ATTPROJB || i == FCB || i == FCPROJB;
        const bool ln_weight = i == LN1W || i == LN2W || i == LNFW;
        d[i] = !bias && (!ln_weight || r.decay_layernorm_weights);
    }
    return d;
}

}  // namespace lnfree

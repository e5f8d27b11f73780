// libFuzzer target: a recipe file as the trainer reads it (train_gpt2_lnfree.cu's resolve_recipe): the bytes parsed
// by nlohmann::json without exceptions, then lnfree::apply_recipe_json over a preset (dev/fuzz.sh builds and runs
// it). Bad input must end in lnfree::Error; anything else is a finding. A recipe that is accepted must keep every
// field in range, hold exactly the values the file gave (no integer wrapped into int), and read back as itself
// from recipe_to_json (what the trainer writes to summary.json). nlohmann refuses numbers past double's range.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lnfree/error.h"
#include "lnfree/recipe.h"
#include "test/fuzz/fuzz_check.h"

namespace {

using nlohmann::json;

// The fields recipe_to_json writes under the name a file uses; sigma_file (made relative to the file's folder),
// events (gap defaults to 0) and momentum (sets the three) are checked apart.
bool written_as_read(const std::string& key) { return key != "sigma_file" && key != "events" && key != "momentum"; }

void check_accepted(const lnfree::Recipe& r, const json& file) {
    FUZZ_CHECK(r.steps >= 0 && r.micro_batch >= 1 && r.grad_accum >= 1 && r.seq_len >= 2 && r.lr.warmup >= 0 &&
               r.lr.length >= 1 && r.ln1_calls >= 2 && r.ln1_calls <= 8 && r.dropout >= 0 && r.dropout < 1);
    FUZZ_CHECK(r.sampling == lnfree::Recipe::Sampling::chunks || r.sampling == lnfree::Recipe::Sampling::random_windows);
    for (const lnfree::RemovalEvent& e : r.events)
        FUZZ_CHECK(e.kind == lnfree::PathKind::LN2 || e.kind == lnfree::PathKind::LN1QK ||
                   e.kind == lnfree::PathKind::LN1V || e.kind == lnfree::PathKind::LNF);
    const json out = lnfree::recipe_to_json(r);
    for (const auto& [key, value] : out.items())
        if (value.is_number_float()) FUZZ_CHECK(std::isfinite(value.get<double>()));
    for (const auto& [key, value] : file.items()) {
        FUZZ_CHECK(key == "momentum" || out.contains(key));  // an unknown field is refused
        if (written_as_read(key)) FUZZ_CHECK(out[key] == value);
    }
    if (file.contains("momentum"))
        for (const char* m : {"momentum_ln1", "momentum_ln2", "momentum_lnf"})
            FUZZ_CHECK(out[m] == (file.contains(m) ? file[m] : file["momentum"]));
    if (file.contains("events")) {
        const json& events = file["events"];
        FUZZ_CHECK(events.size() == r.events.size());
        for (size_t i = 0; i < r.events.size(); i++) {
            FUZZ_CHECK(out["events"][i]["kind"] == events[i]["kind"] && out["events"][i]["start"] == events[i]["start"]);
            FUZZ_CHECK(out["events"][i]["gap"] == events[i].value("gap", json(0)));
        }
    }
    if (!r.sigma_file.empty() && r.sigma_file[0] != '/') FUZZ_CHECK(r.sigma_file.rfind("runs/", 0) == 0);

    // summary.json's recipe, applied to any recipe, gives this one again ("recipe.json" has no folder to prepend)
    lnfree::Recipe again = lnfree::preset_recipe("pretrain", 2);
    try {
        lnfree::apply_recipe_json(again, out, "recipe.json");
    } catch (const lnfree::Error&) {
        FUZZ_CHECK(!"recipe_to_json's output is refused");
    }
    FUZZ_CHECK(lnfree::recipe_to_json(again) == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::vector<lnfree::Recipe> bases = {lnfree::derive_recipe(2, 120),
                                                      lnfree::preset_recipe("small-2024", 12)};
    const json j = json::parse(std::string((const char*)data, size), nullptr, false);
    if (j.is_discarded()) return 0;  // the trainer's "not valid JSON"
    FUZZ_CHECK(json::parse(j.dump(), nullptr, false) == j);  // whatever parsed prints and parses back
    for (const lnfree::Recipe& base : bases) {
        lnfree::Recipe r = base;
        try {
            lnfree::apply_recipe_json(r, j, "runs/recipe.json");
        } catch (const lnfree::Error&) {
            continue;
        }
        check_accepted(r, j);
    }
    return 0;
}

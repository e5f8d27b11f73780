// Reading the PyTorch twin's fixtures (test/fixtures/*.safetensors, written by dev/pytorch_twin.py) into the
// reference's types, and the relative error every comparison uses.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "lnfree/model.h"
#include "lnfree/safetensors.h"
#include "lnfree/sigma_estimator.h"

namespace lnfree::test {

inline std::string fixture_path(const std::string& name) {
    return std::string(LNFREE_SOURCE_DIR) + "/test/fixtures/" + name + ".safetensors";
}

inline nlohmann::json fixture_config(const SafetensorsFile& f) { return nlohmann::json::parse(f.metadata("config")); }

// ||ours - ref|| / ||ref|| (the plain norm of ours when ref is zero)
template <typename A, typename B>
double rel_error(const A& ours, const B& ref) {
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < ref.size(); i++) {
        diff += ((double)ours[i] - (double)ref[i]) * ((double)ours[i] - (double)ref[i]);
        norm += (double)ref[i] * (double)ref[i];
    }
    return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

inline GPT2Config model_config(const nlohmann::json& j) {
    GPT2Config c;
    c.L = j.at("L"); c.C = j.at("C"); c.NH = j.at("NH"); c.V = j.at("V"); c.Vp = j.at("Vp"); c.maxT = j.at("maxT");
    return c;
}

// The 16 tensors named prefix + kParamNames[i].
template <typename real>
ParameterSet<real> load_params(const SafetensorsFile& f, const GPT2Config& c, const std::string& prefix = "") {
    ParameterSet<real> p(c);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        std::vector<double> v = f.doubles(prefix + kParamNames[i]);
        REQUIRE(v.size() == p.numel(i));
        std::copy(v.begin(), v.end(), p.tensor(i));
    }
    return p;
}

inline LayerNormPaths paths_from_config(const nlohmann::json& j, int L) {
    LayerNormPaths p(L);
    for (int l = 0; l < L; l++) {
        p.ln2_fixed[l] = j.at("ln2_fixed")[l].get<bool>();
        p.ln1qk_fixed[l] = j.at("ln1qk_fixed")[l].get<bool>();
        p.ln1v_fixed[l] = j.at("ln1v_fixed")[l].get<bool>();
    }
    p.lnf_fixed = j.at("lnf_fixed");
    return p;
}

inline SigmaState sigma_from_fixture(const SafetensorsFile& f, int L) {
    SigmaState s(L);
    s.ema = f.doubles("sigma_ema_in");
    s.sigma = f.doubles("sigma_in");
    REQUIRE(s.ema.size() == (size_t)(2 * L + 1));
    REQUIRE(s.sigma.size() == (size_t)(2 * L + 1));
    return s;
}

inline SigmaEstimator estimator_from_config(const nlohmann::json& j) {
    SigmaEstimator e;
    e.momentum_ln1 = j.at("momentum").at("ln1");
    e.momentum_ln2 = j.at("momentum").at("ln2");
    e.momentum_lnf = j.at("momentum").at("lnf");
    e.ln1_calls = j.at("ln1_calls");
    return e;
}

// Whether element e of the qkv bias (3C per layer) is a key bias. Key biases get an identically zero gradient (a
// constant added to every score of a softmax row changes nothing), so Adam moves them by rounding noise alone,
// amplified up to lr per step when |g| ~ eps: trajectories compare them in absolute terms, not relatively.
inline bool is_key_bias(size_t e, int C) {
    const size_t column = e % (3 * (size_t)C);
    return column >= (size_t)C && column < 2 * (size_t)C;
}

}  // namespace lnfree::test

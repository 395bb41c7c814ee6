// What authorizing one request costs: the scope check alone (Allows), and the whole of it for
// a token the server has verified before (Authenticate: a SHA-256 of the token, two map lookups
// under a mutex, the revocation and expiry checks) followed by the scope check. The first sight
// of a token costs a scrypt check (BM_FirstSight), once per token per server.
#include <benchmark/benchmark.h>

#include "server/auth.h"

namespace {

using nodata::server::Action;

std::vector<nodata::server::Scope> Scopes() {
  return *nodata::server::ParseScopes(
      "publish:orders.* publish:payments consume:orders.* consume:audit query:daily-*");
}

void BM_Allows(benchmark::State& state) {
  const std::vector<nodata::server::Scope> scopes = Scopes();
  for (auto _ : state) {
    benchmark::DoNotOptimize(nodata::server::Allows(scopes, Action::kConsume, "audit"));
  }
}
BENCHMARK(BM_Allows);

struct Fixture {
  nodata::server::MintedToken minted =
      *nodata::server::MintToken("svc", Scopes(), 0, 0);
  nodata::server::Authenticator auth{
      [this]() -> absl::StatusOr<std::vector<nodata::storage::TokenRow>> {
        return std::vector<nodata::storage::TokenRow>{minted.row};
      },
      [] { return int64_t{1}; }};
};

void BM_AuthenticateAndAllow(benchmark::State& state) {
  Fixture f;
  (void)f.auth.Authenticate(f.minted.token);  // verified once, as a server does
  for (auto _ : state) {
    auto p = f.auth.Authenticate(f.minted.token);
    benchmark::DoNotOptimize((*p)->Allows(Action::kPublish, "orders.eu"));
  }
}
BENCHMARK(BM_AuthenticateAndAllow);

void BM_FirstSight(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    benchmark::DoNotOptimize(nodata::server::TokenMatchesHash(f.minted.token, f.minted.row.hash));
  }
}
BENCHMARK(BM_FirstSight)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

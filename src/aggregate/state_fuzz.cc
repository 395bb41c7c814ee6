// libFuzzer target: the decoders of an aggregation's stored state — the checkpoint, a stored
// window, the built-in measures' accumulators (every measure kind, sketches included) — and the
// per-record field extraction from event data — and the definitions' text as users and API
// clients send it (JSON paths, keys, measures, windows, start positions). Nothing may crash; what
// decodes must encode and read back.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/definition.h"
#include "aggregate/measures.h"
#include "aggregate/sketch.h"
#include "aggregate/store.h"

namespace {

using nodata::aggregate::MeasureSet;

// Every measure kind.
MeasureSet* NewMeasures() {
  std::vector<nodata::aggregate::MeasureSpec> specs;
  for (const char* m : {"n=count()", "c=count($.a)", "s=sum($.a)", "lo=min($.a)", "hi=max($.a)",
                        "mean=avg($.a)", "last=last($.b)", "d=count_distinct($.b)",
                        "p=quantile($.a, 0.99)"}) {
    specs.push_back(*nodata::aggregate::ParseMeasure(m));
  }
  return new MeasureSet(std::move(specs), *nodata::aggregate::ParseKey("$.k"));
}

const MeasureSet& Measures() {
  static const MeasureSet* set = NewMeasures();
  return *set;
}

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0:
      if (auto m = nodata::aggregate::DecodeMeta(input); m.ok()) {
        auto again = nodata::aggregate::DecodeMeta(nodata::aggregate::EncodeMeta(*m));
        Check(again.ok() && again->offsets == m->offsets && again->late == m->late &&
              again->event_time_us == m->event_time_us);
      }
      break;
    case 1:
      if (auto w = nodata::aggregate::DecodeWindow(7, input); w.ok()) {
        auto again = nodata::aggregate::DecodeWindow(7, nodata::aggregate::EncodeWindow(*w));
        Check(again.ok() && again->state == w->state && again->values == w->values &&
              again->end_us == w->end_us && again->final == w->final);
      }
      break;
    case 2:
      if (auto accs = Measures().Parse(input); accs.ok()) {
        std::string values, bytes;
        Measures().Values(*accs, &values);
        Measures().Serialize(*accs, &bytes);
        auto again = Measures().Parse(bytes);
        Check(again.ok());
        Measures().Merge(*accs, *again);
        Measures().Values(*accs, &values);
      }
      break;
    case 3: {
      // Event data as the fold sees it, folded into fresh accumulators.
      static MeasureSet* set = NewMeasures();
      nodata::aggregate::Accumulators accs = set->New();
      if (set->Extract(input)) set->Add(accs, 1);
      std::string values;
      set->Values(accs, &values);
      break;
    }
    case 4:
      if (auto d = nodata::aggregate::DistinctSketch::Parse(input); d.ok()) {
        d->Estimate();
      }
      break;
    case 5:
      if (auto q = nodata::aggregate::QuantileSketch::Parse(input); q.ok()) {
        q->Quantile(0.5);
      }
      break;
    case 6:
      if (auto p = nodata::aggregate::ParseJsonPath(input); p.ok()) {
        auto again = nodata::aggregate::ParseJsonPath(p->text);
        Check(again.ok() && again->pointer == p->pointer);
      }
      if (auto k = nodata::aggregate::ParseKey(input); k.ok()) {
        auto again = nodata::aggregate::ParseKey(nodata::aggregate::FormatKey(*k));
        Check(again.ok() && nodata::aggregate::FormatKey(*again) ==
                                nodata::aggregate::FormatKey(*k));
      }
      break;
    case 7:
      if (auto m = nodata::aggregate::ParseMeasure(input); m.ok()) {
        const std::string text = nodata::aggregate::FormatMeasure(*m);
        auto again = nodata::aggregate::ParseMeasure(text);
        Check(again.ok() && nodata::aggregate::FormatMeasure(*again) == text);
      }
      if (auto w = nodata::aggregate::ParseWindow(input); w.ok()) {
        auto again = nodata::aggregate::ParseWindow(nodata::aggregate::FormatWindow(*w));
        Check(again.ok() && nodata::aggregate::FormatWindow(*again) ==
                                nodata::aggregate::FormatWindow(*w));
      }
      if (auto st = nodata::aggregate::ParseStart(input); st.ok()) {
        Check(nodata::aggregate::ParseStart(nodata::aggregate::FormatStart(*st)).ok());
      }
      break;
  }
  return 0;
}

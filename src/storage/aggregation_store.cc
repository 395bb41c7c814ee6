#include "storage/aggregation_store.h"

#include "storage/internal/sqlite.h"

namespace nodata::storage {
namespace {

using internal::Statement;

constexpr std::string_view kNoun = "aggregation";

}  // namespace

absl::Status AggregationStore::Create(const AggregationRow& row) {
  return internal::InsertNamed(
      db_, kNoun, row.name,
      "INSERT INTO aggregations (name, spec, module_sha256, created_at_us, updated_at_us) "
      "VALUES (?, ?, ?, ?, ?)",
      [&row](Statement& st) {
        st.BindText(1, row.name);
        st.BindText(2, row.spec);
        st.BindText(3, row.module_sha256);
        st.BindInt(4, row.created_at_us);
        st.BindInt(5, row.updated_at_us);
      });
}

absl::Status AggregationStore::Update(const AggregationRow& row) {
  return internal::ChangeNamed(
      db_, kNoun, row.name,
      "UPDATE aggregations SET spec = ?, module_sha256 = ?, updated_at_us = ? WHERE name = ?",
      [&row](Statement& st) {
        st.BindText(1, row.spec);
        st.BindText(2, row.module_sha256);
        st.BindInt(3, row.updated_at_us);
        st.BindText(4, row.name);
      });
}

absl::Status AggregationStore::Delete(std::string_view name) {
  return internal::ChangeNamed(db_, kNoun, name, "DELETE FROM aggregations WHERE name = ?",
                               [name](Statement& st) { st.BindText(1, name); });
}

absl::StatusOr<std::vector<AggregationRow>> AggregationStore::List() {
  std::vector<AggregationRow> out;
  absl::Status s = internal::ForEachRow(
      db_, "list aggregations",
      "SELECT name, spec, module_sha256, created_at_us, updated_at_us "
      "FROM aggregations ORDER BY name",
      [&out](Statement& st) {
        out.push_back(AggregationRow{st.ColumnText(0), st.ColumnText(1), st.ColumnText(2),
                                     st.ColumnInt(3), st.ColumnInt(4)});
      });
  if (!s.ok()) return s;
  return out;
}

}  // namespace nodata::storage

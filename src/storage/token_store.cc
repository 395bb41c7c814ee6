#include "storage/token_store.h"

#include "storage/internal/sqlite.h"

namespace nodata::storage {
namespace {

using internal::Statement;

constexpr std::string_view kNoun = "token";

}  // namespace

absl::Status TokenStore::Create(const TokenRow& row) {
  return internal::InsertNamed(
      db_, kNoun, row.name,
      "INSERT INTO tokens (name, id, hash, scopes, created_at_us, expires_at_us, revoked_at_us) "
      "VALUES (?, ?, ?, ?, ?, ?, ?)",
      [&row](Statement& st) {
        st.BindText(1, row.name);
        st.BindText(2, row.id);
        st.BindText(3, row.hash);
        st.BindText(4, row.scopes);
        st.BindInt(5, row.created_at_us);
        st.BindInt(6, row.expires_at_us);
        st.BindInt(7, row.revoked_at_us);
      });
}

absl::Status TokenStore::Revoke(std::string_view name, int64_t now_us) {
  return internal::ChangeNamed(
      db_, kNoun, name,
      "UPDATE tokens SET revoked_at_us = ? WHERE name = ? AND revoked_at_us = 0",
      [name, now_us](Statement& st) {
        st.BindInt(1, now_us);
        st.BindText(2, name);
      });
}

absl::StatusOr<std::vector<TokenRow>> TokenStore::List() {
  std::vector<TokenRow> out;
  absl::Status s = internal::ForEachRow(
      db_, "list tokens",
      "SELECT name, id, hash, scopes, created_at_us, expires_at_us, revoked_at_us "
      "FROM tokens ORDER BY name",
      [&out](Statement& st) {
        out.push_back(TokenRow{st.ColumnText(0), st.ColumnText(1), st.ColumnText(2),
                               st.ColumnText(3), st.ColumnInt(4), st.ColumnInt(5),
                               st.ColumnInt(6)});
      });
  if (!s.ok()) return s;
  return out;
}

}  // namespace nodata::storage

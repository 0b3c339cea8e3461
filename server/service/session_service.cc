#include "server/convert/convert.h"
#include "server/service/idempotent.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {

ServerUnaryReactor* SessionServiceImpl::CreateSession(CallbackServerContext* ctx,
                                                      const v1::CreateSessionRequest* request,
                                                      v1::Session* response) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Done<SessionView> done =
      FinishLater<SessionView>(ctx, response, [](const SessionView& s, v1::Session* out) { ToProto(s, out); });
  if (AnsweredByRequestId(backend_, "", request->request_id(), "CreateSession", done)) return reactor;
  done(backend_->CreateSession(request->name()));
  return reactor;
}

ServerUnaryReactor* SessionServiceImpl::GetSession(CallbackServerContext* ctx, const v1::GetSessionRequest* request,
                                                   v1::Session* response) {
  absl::StatusOr<SessionView> s = backend_->GetSession(request->session_id());
  if (s.ok()) ToProto(*s, response);
  return FinishUnary(ctx, s.status());
}

ServerUnaryReactor* SessionServiceImpl::ListSessions(CallbackServerContext* ctx,
                                                     const v1::ListSessionsRequest* request,
                                                     v1::ListSessionsResponse* response) {
  absl::StatusOr<Page<SessionView>> page = backend_->ListSessions({request->page_size(), request->page_token()});
  if (page.ok()) {
    for (const SessionView& s : page->items) ToProto(s, response->add_sessions());
    response->set_next_page_token(page->next_page_token);
  }
  return FinishUnary(ctx, page.status());
}

ServerUnaryReactor* SessionServiceImpl::DeleteSession(CallbackServerContext* ctx,
                                                      const v1::DeleteSessionRequest* request,
                                                      v1::DeleteSessionResponse* response) {
  absl::StatusOr<int> cancelled = backend_->DeleteSession(request->session_id());
  if (cancelled.ok()) response->set_cancelled_jobs(*cancelled);
  return FinishUnary(ctx, cancelled.status());
}

}  // namespace sampled::server

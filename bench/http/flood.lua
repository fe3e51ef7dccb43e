-- bench/http/abuse.sh: one member submitting jobs as fast as the server answers (wrk -s).
-- FLOOD_TOKEN and FLOOD_PROJECT come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("FLOOD_TOKEN")
wrk.body = '{"project":' .. os.getenv("FLOOD_PROJECT") .. ',"command":["sleep","3600"],"time_limit_s":3600}'

-- luatos.lua: a LuatOS-compatible host environment, enough to run the LuatOS
-- scripts that use libfota / libfota2 (the seed examples, the fota demos) on
-- a PC with the Lua modules of this directory.
--
--   LUA_CPATH='build/examples-c/lua/5.3/?.so' \
--     lua5.3 examples-c/lua/luatos.lua [--max-seconds N] [-e CHUNK]... SCRIPT.lua
--
-- Installs the globals LuatOS scripts expect, runs SCRIPT, then drives its
-- event loop (sys.run) until rtos.reboot() or the time limit:
--
--   sys        taskInit, wait, waitUntil, publish, subscribe, unsubscribe,
--              timerStart, timerLoopStart, timerStop, timerStopAll,
--              timerIsActive, run (also `require "sys"`, `require "sysplus"`)
--   log        debug/info/warn/error(tag, ...) print `I/user.tag ...` lines
--   rtos       reboot() prints `rtos.reboot` and ends the run with status 0;
--              version() "V2035", bsp() "PC", firmware() "LuatOS-SoC_V2035_PC"
--   mobile     imei() "864040064024194"
--   PROJECT "fotademo", VERSION "1.0.0", PRODUCT_KEY nil (set them with -e,
--   e.g. -e 'PRODUCT_KEY="abc"', or in the script as LuatOS's main.lua does)
--
-- `IP_READY` is published 10 ms after the start: the host is online.
--
-- Every callback that libfota/libfota2 call is printed first as a line
-- `cb: <arg1> <arg2> ...` (result, fota code, platform code).
--
-- Time is virtual: when nothing is ready to run and no request is in flight,
-- the clock jumps to the next timer, so sys.timerLoopStart(f, 4*3600*1000)
-- fires at once; while a request runs, the loop waits in the modules' poll()
-- and the clock advances with the waits.
--
-- Exit status: 0 after rtos.reboot(); 1 after an error in the script, a task,
-- a timer or a callback; 2 when nothing is left to run (no timers, no
-- requests); 3 after --max-seconds N of real time (default 60).

local USAGE = "usage: luatos.lua [--max-seconds N] [-e CHUNK]... SCRIPT.lua [ARGS...]"

local max_seconds = 60
local chunks = {}
local script, script_index
do
    local i = 1
    while i <= #arg do
        local a = arg[i]
        if a == "--max-seconds" then
            max_seconds = tonumber(arg[i + 1])
            if not max_seconds or max_seconds <= 0 then
                io.stderr:write(USAGE, "\n")
                os.exit(2)
            end
            i = i + 2
        elseif a == "-e" and arg[i + 1] then
            chunks[#chunks + 1] = arg[i + 1]
            i = i + 2
        elseif a == "--help" then
            print(USAGE)
            os.exit(0)
        else
            script, script_index = a, i
            break
        end
    end
    if not script then
        io.stderr:write(USAGE, "\n")
        os.exit(2)
    end
end

io.stdout:setvbuf("line")

local function fmt(...)
    local t = table.pack(...)
    for i = 1, t.n do
        t[i] = tostring(t[i])
    end
    return table.concat(t, " ", 1, t.n)
end

-- Ends the run: os.exit closes the Lua state, whose finalisers abort and
-- wait for a request still running.
local function finish(code)
    io.stdout:flush()
    os.exit(code, true)
end

-- rtos.reboot() raises this value to unwind the script back to the loop.
local REBOOT = setmetatable({}, { __tostring = function() return "rtos.reboot" end })
local rebooted = false

local function fail(err)
    if err == REBOOT or rebooted then
        finish(0)
    end
    io.stderr:write("luatos.lua: error: ", tostring(err), "\n")
    finish(1)
end

local function traceback(err)
    if err == REBOOT then
        return err
    end
    return debug.traceback(tostring(err), 2)
end

-- ---- log, rtos, mobile -------------------------------------------------------

log = {}
for level, letter in pairs({ debug = "D", info = "I", warn = "W", error = "E" }) do
    log[level] = function(tag, ...)
        if select("#", ...) > 0 then
            print(letter .. "/user." .. tostring(tag) .. " " .. fmt(...))
        else
            print(letter .. "/user." .. tostring(tag))
        end
    end
end

rtos = {
    reboot = function()
        print("rtos.reboot")
        rebooted = true
        error(REBOOT, 0)
    end,
    version = function() return "V2035" end,
    bsp = function() return "PC" end,
    firmware = function() return "LuatOS-SoC_V2035_PC" end,
}

mobile = {
    imei = function() return "864040064024194" end,
}

PROJECT = "fotademo"
VERSION = "1.0.0"

-- ---- sys ------------------------------------------------------------------------

sys = {}
package.loaded.sys = sys
package.loaded.sysplus = {}

local now = 0              -- virtual milliseconds since the start
local timers = {}          -- id -> { at, period, fn, args }
local last_timer_id = 0
local messages = {}        -- published, not yet dispatched: { topic, args }
local subscribers = {}     -- topic -> list of functions
local sources = {}         -- poll functions of the loaded C modules

local function resume(co, ...)
    local ok, err = coroutine.resume(co, ...)
    if not ok then
        fail(err == REBOOT and err or debug.traceback(co, tostring(err)))
    end
end

local function running_task(name)
    local co, main = coroutine.running()
    if co == nil or main then
        error(name .. ": call it from a task (sys.taskInit)", 3)
    end
    return co
end

function sys.taskInit(fn, ...)
    assert(type(fn) == "function", "sys.taskInit: function expected")
    local co = coroutine.create(fn)
    resume(co, ...) -- runs at once until its first wait, as in LuatOS
    return co
end

local function add_timer(fn, ms, loop, ...)
    assert(type(fn) == "function", "sys.timerStart: function expected")
    assert(type(ms) == "number" and ms >= 0, "sys.timerStart: milliseconds expected")
    last_timer_id = last_timer_id + 1
    timers[last_timer_id] = { at = now + ms, period = loop and math.max(ms, 1) or nil, fn = fn,
                              args = table.pack(...) }
    return last_timer_id
end

function sys.timerStart(fn, ms, ...)
    return add_timer(fn, ms, false, ...)
end

function sys.timerLoopStart(fn, ms, ...)
    return add_timer(fn, ms, true, ...)
end

function sys.timerStop(id, ...)
    if type(id) == "number" then
        timers[id] = nil
        return
    end
    for k, t in pairs(timers) do
        if t.fn == id then
            timers[k] = nil
        end
    end
end

sys.timerStopAll = sys.timerStop

function sys.timerIsActive(id)
    return timers[id] ~= nil
end

function sys.wait(ms)
    local co = running_task("sys.wait")
    sys.timerStart(resume, ms, co)
    return coroutine.yield()
end

function sys.subscribe(topic, fn)
    subscribers[topic] = subscribers[topic] or {}
    table.insert(subscribers[topic], fn)
end

function sys.unsubscribe(topic, fn)
    local list = subscribers[topic] or {}
    for i = #list, 1, -1 do
        if list[i] == fn then
            table.remove(list, i)
        end
    end
end

function sys.publish(topic, ...)
    messages[#messages + 1] = { topic = topic, args = table.pack(...) }
end

function sys.waitUntil(topic, ms)
    local co = running_task("sys.waitUntil")
    local timer
    local function on(...)
        sys.unsubscribe(topic, on)
        if timer then
            sys.timerStop(timer)
        end
        resume(co, true, ...)
    end
    sys.subscribe(topic, on)
    if ms then
        timer = sys.timerStart(function()
            sys.unsubscribe(topic, on)
            resume(co, false)
        end, ms)
    end
    return coroutine.yield()
end

local function call(fn, args)
    local ok, err = xpcall(fn, traceback, table.unpack(args, 1, args.n))
    if not ok then
        fail(err)
    end
end

-- Runs one published message's subscribers; false when there is none.
local function dispatch_message()
    local m = table.remove(messages, 1)
    if not m then
        return false
    end
    local list = { table.unpack(subscribers[m.topic] or {}) }
    for _, fn in ipairs(list) do
        call(fn, m.args)
    end
    return true
end

local function next_timer()
    local id, best
    for k, t in pairs(timers) do
        if not best or t.at < best.at or (t.at == best.at and k < id) then
            id, best = k, t
        end
    end
    return id, best
end

-- Runs the earliest timer that is due; false when none is.
local function fire_timer()
    local id, t = next_timer()
    if not t or t.at > now then
        return false
    end
    if t.period then
        t.at = t.at + t.period
    else
        timers[id] = nil
    end
    call(t.fn, t.args)
    return true
end

-- The C modules' poll(ms): delivers finished requests (their callbacks run
-- here). Returns delivered, pending.
local function poll(ms)
    local delivered, pending = 0, 0
    for _, p in ipairs(sources) do
        local ok, d, n = xpcall(p, traceback, ms)
        if not ok then
            fail(d)
        end
        delivered, pending = delivered + d, pending + n
        ms = 0
    end
    return delivered, pending
end

function sys.run()
    local deadline = os.time() + max_seconds
    while true do
        if os.time() > deadline then
            io.stderr:write(string.format("luatos.lua: --max-seconds %s passed without rtos.reboot()\n",
                                          tostring(max_seconds)))
            finish(3)
        end
        local busy = dispatch_message() or fire_timer()
        local delivered, pending = poll(0)
        if not busy and delivered == 0 then
            local _, t = next_timer()
            if pending > 0 then
                local wait = t and math.max(1, math.min(100, t.at - now)) or 100
                if poll(wait) == 0 then
                    now = now + wait
                end
            elseif t then
                now = math.max(now, t.at)
            else
                io.stderr:write("luatos.lua: nothing left to run (no timers, no requests in flight)\n")
                finish(2)
            end
        end
    end
end

-- ---- libfota, libfota2 ------------------------------------------------------------

-- Every callback is printed as `cb: ...` before the script's function runs,
-- and the event loop polls the modules. Built-in modules (registered by the
-- interpreter, as a firmware does: examples-c/lua/builtin.c) are wrapped in
-- place; otherwise they load from LUA_CPATH like any C module.
local function wrap(m)
    local known = false
    for _, p in ipairs(sources) do
        known = known or p == m.poll
    end
    if not known then
        sources[#sources + 1] = m.poll
    end
    local wrapped = setmetatable({}, { __index = m })
    function wrapped.request(cb, ...)
        if type(cb) == "function" then
            local user = cb
            cb = function(...)
                print("cb: " .. fmt(...))
                return user(...)
            end
        end
        -- An argument error names the script's line, not this wrapper's.
        local ok, err = pcall(m.request, cb, ...)
        if not ok then
            if type(err) == "string" then
                err = err:gsub("^[^\n]-luatos%.lua:%d+: ", ""):gsub("to '%?'", "to 'request'")
            end
            error(err, 2)
        end
    end
    return wrapped
end

for _, name in ipairs({ "libfota", "libfota2" }) do
    if package.loaded[name] then
        package.loaded[name] = wrap(package.loaded[name])
    else
        package.preload[name] = function()
            local path = package.searchpath(name, package.cpath)
            if not path then
                error("module '" .. name .. "' not found in LUA_CPATH (" .. package.cpath .. ")")
            end
            return wrap(assert(package.loadlib(path, "luaopen_" .. name))(name))
        end
    end
end

-- ---- the script ------------------------------------------------------------------

sys.timerStart(sys.publish, 10, "IP_READY", "127.0.0.1")

for _, chunk in ipairs(chunks) do
    local fn, err = load(chunk, "=(-e)")
    if not fn then
        io.stderr:write("luatos.lua: ", err, "\n")
        os.exit(2)
    end
    call(fn, table.pack())
end

local main, err = loadfile(script)
if not main then
    io.stderr:write("luatos.lua: ", err, "\n")
    os.exit(2)
end
call(main, table.pack(table.unpack(arg, script_index + 1)))
sys.run()

/*
 * What the Lua modules libfota and libfota2 (fotalua.c) need from the system
 * besides fota's own hooks: a worker task and a wake-up of the Lua task.
 *
 * fota_request() blocks for the whole download, and a Lua VM is not thread
 * safe, so a request runs on a worker task and its result is handed back to
 * the Lua task, which calls the script's callback. Host (port_posix.c): a
 * detached pthread, and a condition variable the host event loop waits on
 * through `libfota2.poll(ms)`. Firmware (e.g. LuatOS): a task from the RTOS,
 * and a message to the Lua task whose handler calls fotalua_deliver(L).
 */
#ifndef FOTALUA_PORT_H
#define FOTALUA_PORT_H

#include <stdint.h>

#include "lua.h"

/* Installs fota's platform hooks (fota_init()). Called once, by the first
   luaopen_libfota*(). Returns 0, or < 0 (the require fails). */
int fotalua_port_init(void);

/* Runs fn(arg) once on a new task (with stack enough for fota_request:
   about 40 KB with TLS). Returns 0, or < 0 when no task could be made. */
int fotalua_port_spawn(void (*fn)(void *arg), void *arg);

/* Waits until the last task started by fotalua_port_spawn() has returned
   (its result was delivered already): called before the next spawn and by
   the finaliser, so that a closing Lua state never unloads the module's
   code while a worker still runs its last instructions. Firmware with
   built-in modules (never unloaded) may just return. */
void fotalua_port_join(void);

/* Called on the worker task when a result is ready: wake the Lua task
   (firmware: post a message whose handler calls fotalua_deliver(L)). */
void fotalua_port_notify(void);

/* Called on the Lua task by poll(ms) and by the finaliser of a closing Lua
   state (which waits for a running request to end): wait at most `ms` for a
   notify (a notify that came before the wait counts). Firmware ports that
   deliver by message may just sleep `ms`: returning at once would make the
   finaliser spin and could starve a lower-priority worker task. */
void fotalua_port_wait(uint32_t ms);

/* Calls the callbacks of the requests that ended (on the Lua task that made
   them); returns how many. What libfota2.poll(0) does, for firmware ports. */
int fotalua_deliver(lua_State *L);

#endif /* FOTALUA_PORT_H */

/*
 * fota-lua: a Lua interpreter with libfota and libfota2 built in, registered
 * the way a firmware registers its built-in modules (luaL_requiref at
 * start-up, as LuatOS's loadedlibs[] does), so that `require "libfota2"`
 * finds them without any LUA_CPATH. The tests run the seed examples with it.
 *
 *   fota-lua SCRIPT.lua [ARGS...]     (arg[0] = SCRIPT.lua, arg[1..] = ARGS)
 *
 * Exit status: what the script passes to os.exit(), else 0, or 1 after an
 * error (printed with a traceback on stderr).
 */
#include <stdio.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

int luaopen_libfota(lua_State *L);
int luaopen_libfota2(lua_State *L);

static int traceback(lua_State *L)
{
    luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT.lua [ARGS...]\n", argc > 0 ? argv[0] : "fota-lua");
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        return 1;
    }
    luaL_openlibs(L);
    luaL_requiref(L, "libfota", luaopen_libfota, 0);
    lua_pop(L, 1);
    luaL_requiref(L, "libfota2", luaopen_libfota2, 0);
    lua_pop(L, 1);

    lua_createtable(L, argc - 1, 1);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, traceback);
    int status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        for (int i = 2; i < argc; i++) {
            lua_pushstring(L, argv[i]);
        }
        status = lua_pcall(L, argc - 2, 0, 1);
    }
    if (status != LUA_OK) {
        fprintf(stderr, "fota-lua: %s\n", lua_tostring(L, -1));
    }
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}

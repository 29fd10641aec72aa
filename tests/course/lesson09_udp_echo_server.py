# The notes' UDP echo server (001 §3.1.3), unchanged but for the address: it binds
# 127.0.0.1 port 0 (not ('', 8090)) and prints "listening on ADDR" on stderr like
# our servers; prints are flushed so a test sees each line as it happens.
from socket import *
import sys

# 客户端可以发送多条数据
# 服务器端收到什么就返回什么

# 1.创建一个服务端的socket
socket_server = socket(AF_INET, SOCK_DGRAM)

# 2.定义服务器端的IP地址和端口号
host_port = ('127.0.0.1', 0)

# 3.服务器端的Socket 绑定地址和端口
# 只有绑定了地址和端口，才能称之为服务器的Socket
socket_server.bind(host_port)
print("listening on 127.0.0.1:%d" % socket_server.getsockname()[1], file=sys.stderr, flush=True)

while True:

    # 4.接受客户端发送过来的数据,每次接受1KB的数据
    data = socket_server.recvfrom(1024)

    # 5.服务器收到数据之后，原封不动返回，而且是收到哪个客户端的信息，就返回给哪个客户端
    # 里面是一个元组，第一个值是数据内容，第二个值是源IP地址、源端口号
    socket_server.sendto(data[0], data[1])
    print(data[0].decode('utf-8'), flush=True)


# 6.关闭套接字，释放资源
socket_server.close()

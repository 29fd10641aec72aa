# The notes' TCP client (003 §2), unchanged but for the address (argv) and a
# timeout so a test can never hang: sends GBK, prints the raw reply and its text.
import socket
import sys

if __name__ == '__main__':
    tcp_client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_client_socket.settimeout(20)
    tcp_client_socket.connect(("127.0.0.1", int(sys.argv[1])))
    send_data = "你好服务端，我是客户端小黑!".encode("gbk")
    print('将要发送已编码成gbk的数据：', send_data)
    tcp_client_socket.send(send_data)
    recv_data = tcp_client_socket.recv(1024)
    print('服务端返回的数据', recv_data)
    recv_content = recv_data.decode("gbk")
    print("接收服务端解码后的数据为:", recv_content)
    tcp_client_socket.close()
